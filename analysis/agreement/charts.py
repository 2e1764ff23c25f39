"""Plotly figures of the agreement figures, built on the server and embedded as JSON (json_script),
drawn by static/js/charts.js like the evaluation charts.

Every string from a dataset or a user (slugs, behaviors, example texts) goes through
generation.evaluation.charts.safe / hover_text before it enters a figure: Plotly renders a subset of HTML in
titles, tick labels and hover text. Hover text is set with `hovertext`, never a `hovertemplate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from analysis.agreement.figures import CalibrationBin, Figure
from analysis.agreement.selectors import Comparison, GroupReport
from generation.evaluation.charts import MATCH_COLOR, NO_MATCH_COLOR, TEMPLATE, as_json, hover_text, safe

SMALL_MULTIPLE_COLUMNS = 5
SMALL_MULTIPLE_ROW_PX = 130
BAR_COLOR = "#1f5fa8"
GRID_COLOR = "#9aa3ad"


def _error_bars(figures: Sequence[Figure], *, scale: float = 1.0) -> dict[str, Any]:
    """Asymmetric error bars from the figures' CIs (zero where a figure has none)."""
    return {
        "type": "data",
        "symmetric": False,
        "array": [scale * (f.ci_high - f.value) if f.has_ci and f.defined else 0 for f in figures],
        "arrayminus": [scale * (f.value - f.ci_low) if f.has_ci and f.defined else 0 for f in figures],
        "thickness": 1.2,
        "width": 3,
    }


def _value(figure: Figure, scale: float = 1.0) -> float | None:
    return figure.value * scale if figure.defined else None


def _interval_text(figure: Figure, *, percent: bool) -> str:
    def fmt(value: float) -> str:
        return f"{100 * value:.1f}%" if percent else f"{value:.2f}"

    if not figure.defined:
        return "undefined: " + safe(figure.undefined)
    if figure.has_ci:
        return f"{fmt(figure.value)} (95% CI {fmt(figure.ci_low)}–{fmt(figure.ci_high)})"
    return fmt(figure.value)


# ----------------------------------------------------------------------------- distributions


def distribution_figure(
    items: Sequence[tuple[str, Figure]], *, x_title: str, y_title: str, what: str
) -> dict[str, Any]:
    """Bars of shares (one per category) with their 95% intervals."""
    labels = [label for label, _ in items]
    figures = [figure for _, figure in items]
    chart = go.Figure(
        go.Bar(
            x=labels,
            y=[_value(f, 100) for f in figures],
            marker_color=BAR_COLOR,
            error_y=_error_bars(figures, scale=100),
            hovertext=[f"{safe(label)}: {_interval_text(f, percent=True)} of {what}" for label, f in items],
            hoverinfo="text",
        )
    )
    chart.update_layout(
        template=TEMPLATE,
        height=320,
        margin={"l": 10, "r": 10, "t": 20, "b": 50},
        xaxis={"title": {"text": x_title}, "type": "category"},
        yaxis={"title": {"text": y_title}, "range": [0, 100], "automargin": True},
        showlegend=False,
    )
    return as_json(chart)


def relevance_small_multiples(groups: Sequence[GroupReport], *, urls: dict[str, str]) -> dict[str, Any]:
    """The 1-5 relevance distribution of each dataset, one small panel each (the paper's appendix
    figure); a click on a bar opens the dataset's page."""
    rows = max(1, math.ceil(len(groups) / SMALL_MULTIPLE_COLUMNS))
    chart = make_subplots(
        rows=rows,
        cols=SMALL_MULTIPLE_COLUMNS,
        subplot_titles=[safe(group.slug) for group in groups],
        shared_yaxes=True,
        horizontal_spacing=0.03,
        vertical_spacing=min(0.3 / rows, 0.08),
    )
    for i, group in enumerate(groups):
        figures = group.figures
        shares = [_value(f, 100) for _, f in figures.relevance_distribution]
        mean = figures.relevance_mean
        summary = (
            f"mean {mean.value:.2f} ± {figures.relevance_sd.value:.2f} (sd), {figures.ratings} ratings"
            if mean.defined and figures.relevance_sd.defined
            else "no ratings from complete examples"
        )
        chart.add_trace(
            go.Bar(
                x=[str(level) for level, _ in figures.relevance_distribution],
                y=shares,
                marker_color=BAR_COLOR,
                hovertext=[
                    f"{safe(group.slug)}<br>relevance {level}: "
                    f"{'undefined' if share is None else f'{share:.1f}%'}<br>{summary}"
                    for (level, _), share in zip(figures.relevance_distribution, shares, strict=True)
                ],
                hoverinfo="text",
                customdata=[urls.get(group.slug, "")] * 5,
                showlegend=False,
            ),
            row=i // SMALL_MULTIPLE_COLUMNS + 1,
            col=i % SMALL_MULTIPLE_COLUMNS + 1,
        )
    chart.update_yaxes(range=[0, 100], showticklabels=True, ticksuffix="%", nticks=3)
    chart.update_xaxes(type="category")
    chart.update_annotations(font_size=11)
    chart.update_layout(
        template=TEMPLATE,
        height=120 + SMALL_MULTIPLE_ROW_PX * rows,
        margin={"l": 10, "r": 10, "t": 40, "b": 20},
        hovermode="closest",
    )
    return as_json(chart)


# ----------------------------------------------------------------------------- calibration


def calibration_figure(
    bins: Sequence[CalibrationBin],
    *,
    k: int,
    points: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """Does the discriminator predict humans? Mean share of workers who chose the label's answer
    against the label confidence, in bins (marker area ~ examples); with `points`, every example
    too ({confidence, share, text, url}), a click opening its page."""
    chart = go.Figure()
    if points:
        # Shares take k + 1 values; a small fixed jitter keeps the points of one level apart.
        jitter = [((i * 7919) % 11 - 5) / (60 * k) for i in range(len(points))]
        chart.add_trace(
            go.Scatter(
                x=[p["confidence"] for p in points],
                y=[p["share"] + j for p, j in zip(points, jitter, strict=True)],
                mode="markers",
                name="examples",
                marker={"color": NO_MATCH_COLOR, "size": 5, "opacity": 0.35},
                hovertext=[
                    f"{hover_text(p['text'])}<br>label confidence {p['confidence']:.3f}; "
                    f"{round(p['share'] * k)}/{k} workers chose the label's answer"
                    for p in points
                ],
                hoverinfo="text",
                customdata=[p["url"] for p in points],
            )
        )
    chart.add_trace(
        go.Scatter(
            x=[b.mean_confidence for b in bins],
            y=[b.mean_agreement for b in bins],
            mode="lines+markers",
            name="mean per bin",
            marker={
                "color": MATCH_COLOR,
                "size": [8 + 22 * math.sqrt(b.examples / max(x.examples for x in bins)) for b in bins],
            },
            line={"color": MATCH_COLOR},
            hovertext=[
                f"label confidence {b.low:.1f}–{b.high:.1f}: {b.examples} example(s)<br>"
                f"mean confidence {b.mean_confidence:.3f}<br>"
                f"mean share of workers agreeing {100 * b.mean_agreement:.1f}%<br>"
                f"majority agrees on {100 * b.majority_agrees:.1f}%"
                for b in bins
            ],
            hoverinfo="text",
        )
    )
    chart.add_shape(
        type="line", x0=0, y0=0, x1=1, y1=1, line={"color": GRID_COLOR, "dash": "dot", "width": 1}
    )
    chart.update_layout(
        template=TEMPLATE,
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
        # Label confidences are mostly above one half: the axis starts at the lowest bin shown.
        xaxis={
            "title": {"text": "label confidence (discriminator)"},
            "range": [min([b.low for b in bins] + [0.5]) - 0.02, 1.02],
        },
        yaxis={
            "title": {"text": "share of workers who chose the label's answer"},
            "range": [-0.05, 1.05],
            "automargin": True,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="closest",
    )
    return as_json(chart)


# ----------------------------------------------------------------------------- LM vs human


def lm_human_figure(comparisons: Sequence[Comparison], *, urls: dict[str, str]) -> dict[str, Any]:
    """The paper's side-by-side quality comparison: for each behavior, LM-written against
    human-written examples on relevance, label agreement and ambiguity, with 95% intervals."""
    behaviors = [safe(c.behavior) for c in comparisons]
    panels = [
        ("mean relevance (1-5)", lambda g: g.figures.relevance_mean, 1.0, False),
        ("% with a majority agreeing with the label", lambda g: g.figures.majority_agrees, 100.0, True),
        ("% that no worker calls ambiguous", lambda g: g.figures.ambiguity_share(0), 100.0, True),
    ]
    chart = make_subplots(
        rows=1, cols=3, subplot_titles=[title for title, *_ in panels], horizontal_spacing=0.08
    )
    for col, (_, pick, scale, percent) in enumerate(panels, start=1):
        for side, color, name in (
            ("lm", MATCH_COLOR, "LM-written"),
            ("human", NO_MATCH_COLOR, "Human-written"),
        ):
            groups = [getattr(c, side) for c in comparisons]
            figures = [pick(g) for g in groups]
            chart.add_trace(
                go.Bar(
                    x=behaviors,
                    y=[_value(f, scale) for f in figures],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker_color=color,
                    error_y=_error_bars(figures, scale=scale),
                    hovertext=[
                        f"{safe(g.slug)} ({name})<br>{_interval_text(f, percent=percent)}, "
                        f"{g.figures.examples} examples"
                        for g, f in zip(groups, figures, strict=True)
                    ],
                    hoverinfo="text",
                    customdata=[urls.get(g.slug, "") for g in groups],
                ),
                row=1,
                col=col,
            )
    chart.update_yaxes(range=[1, 5], row=1, col=1)
    chart.update_yaxes(range=[0, 100], ticksuffix="%", row=1, col=2)
    chart.update_yaxes(range=[0, 100], ticksuffix="%", row=1, col=3)
    chart.update_annotations(font_size=12)
    chart.update_layout(
        template=TEMPLATE,
        barmode="group",
        height=420,
        margin={"l": 10, "r": 10, "t": 50, "b": 80},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0},
        hovermode="closest",
    )
    return as_json(chart)
