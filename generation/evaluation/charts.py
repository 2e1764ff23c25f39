"""Plotly figures of evaluation results, built on the server and embedded in pages as JSON
(`json_script`); static/js/charts.js draws them with the plotly.js this site serves itself.

Plotly renders a subset of HTML in hover labels, legend entries and axis titles (<b>, <br>,
<a href=...>), so every string that comes from a model, a dataset file or a user (example texts,
answers, behaviors, model specs) is passed through `html.escape` before it enters a figure. Our own
line breaks are the only markup. Hover text is set with `hovertext` + `hoverinfo="text"`, never
with a `hovertemplate`, whose %{...} syntax would interpret placeholders inside untrusted text.
"""

from __future__ import annotations

import html
import json
import textwrap
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from generation.evaluation.selectors import ItemPoint, PairedItem, WinogenderPoint
from generation.evaluation.winogender import occupation_points
from generation.models import EvaluationRun

HOVER_TEXT_CHARS = 160
HOVER_LINE_CHARS = 60
# Above this many points, WebGL draws them; SVG scatter slows down past a few thousand.
WEBGL_THRESHOLD = 2000
MATCH_COLOR = "#1f5fa8"
NO_MATCH_COLOR = "#c2410c"
SENTENCE_COLOR = "#94a3b8"
TEMPLATE = "plotly_white"


def safe(text: str) -> str:
    """Untrusted text as plotly shows it literally: every tag and entity escaped."""
    return html.escape(str(text), quote=True)


def hover_text(text: str, *, limit: int = HOVER_TEXT_CHARS) -> str:
    """A long text shortened and wrapped for a tooltip; wrapped before escaping, so no line break
    ever falls inside an entity, and joined with the one tag we add ourselves."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return "<br>".join(safe(line) for line in textwrap.wrap(flat, HOVER_LINE_CHARS)) or "(no text)"


def run_label(run: EvaluationRun) -> str:
    """How a run is named in legends and axis titles (escaped: the model spec is free text)."""
    return safe(f"#{run.pk} {run.model_spec} · {run.prompt_format}")


def as_json(figure: go.Figure) -> dict[str, Any]:
    """The figure as plain JSON values, ready for json_script (plotly's own encoder turns numpy
    arrays and the template into lists and dicts)."""
    return json.loads(figure.to_json())


def _points(
    *, name: str, color: str, x: list[float], y: list[float], hovertext: list[str], urls: list[str]
) -> go.Scatter | go.Scattergl:
    """One group of item points; hover text must already be escaped. A click opens the item's url."""
    trace = go.Scattergl if len(x) > WEBGL_THRESHOLD else go.Scatter
    return trace(
        x=x,
        y=y,
        mode="markers",
        name=name,
        marker={"color": color, "size": 6, "opacity": 0.7},
        hovertext=hovertext,
        hoverinfo="text",
        customdata=urls,
    )


# ----------------------------------------------------------------------------- the overview


def overview_figure(runs: Sequence[EvaluationRun], *, run_urls: dict[int, str]) -> dict[str, Any]:
    """% of answers matching the behavior per dataset, with Wilson 95% intervals as error bars, one
    trace per (model spec, prompt format): the layout of the paper's per-dataset figures.

    `runs` must hold one run per (dataset, spec, format) and come with their datasets and collections
    (select_related); `run_urls` gives each run's page, which a click on its point opens."""
    datasets = sorted({run.dataset for run in runs}, key=lambda d: (d.collection.name, d.slug))
    categories = [d.slug for d in datasets]
    series: dict[tuple[str, str], list[EvaluationRun]] = {}
    for run in runs:
        series.setdefault((run.model_spec, run.prompt_format), []).append(run)

    figure = go.Figure()
    for (spec, prompt_format), members in sorted(series.items()):
        members = sorted(members, key=lambda r: categories.index(r.dataset.slug))
        figure.add_trace(
            go.Scatter(
                x=[r.percent_matching for r in members],
                y=[r.dataset.slug for r in members],
                mode="markers",
                name=safe(f"{spec} · {prompt_format}"),
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [r.ci_high - r.percent_matching for r in members],
                    "arrayminus": [r.percent_matching - r.ci_low for r in members],
                    "thickness": 1.5,
                },
                hovertext=[
                    "<br>".join(
                        [
                            safe(r.dataset.slug),
                            hover_text(r.dataset.behavior, limit=80),
                            safe(f"{spec} · {prompt_format}"),
                            f"{r.percent_matching:.1f}% matching (95% CI {r.ci_low:.1f}–{r.ci_high:.1f}),"
                            f" n={r.item_count}",
                        ]
                    )
                    for r in members
                ],
                hoverinfo="text",
                customdata=[run_urls[r.pk] for r in members],
            )
        )
    figure.update_layout(
        template=TEMPLATE,
        height=max(320, 140 + 26 * len(categories)),
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
        xaxis={"title": {"text": "% answers matching behavior"}, "range": [0, 100], "zeroline": False},
        yaxis={
            "categoryorder": "array",
            "categoryarray": categories,
            "autorange": "reversed",
            "automargin": True,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)


# ----------------------------------------------------------------------------- one run


def confidence_figure(points: Sequence[ItemPoint]) -> dict[str, Any]:
    """P(matching answer) of each item against the label confidence the dataset's preference model
    gave it: whether the model follows the behavior more on the items the labels are surest of."""
    figure = go.Figure()
    groups = [
        ("matches behavior", MATCH_COLOR, [p for p in points if p.matches_behavior]),
        ("does not match", NO_MATCH_COLOR, [p for p in points if not p.matches_behavior]),
    ]
    for name, color, members in groups:
        members = [p for p in members if p.label_confidence is not None]
        if not members:
            continue
        figure.add_trace(
            _points(
                name=name,
                color=color,
                x=[p.label_confidence for p in members],
                y=[p.p_match for p in members],
                hovertext=[
                    f"#{p.position}: {hover_text(p.text)}<br>"
                    f"P(match) {p.p_match:.3f}, label confidence {p.label_confidence:.3f}"
                    for p in members
                ],
                urls=[p.url for p in members],
            )
        )
    figure.update_layout(
        template=TEMPLATE,
        height=420,
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
        xaxis={"title": {"text": "label confidence"}, "automargin": True},
        yaxis={"title": {"text": "P(answer matching behavior)"}, "range": [-0.02, 1.02], "automargin": True},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)


# ----------------------------------------------------------------------------- two runs


def comparison_figure(
    pairs: Sequence[PairedItem], *, run_a: EvaluationRun, run_b: EvaluationRun
) -> dict[str, Any]:
    """P(match) under run A against run B for each common item; points off the diagonal are items
    the two runs weigh differently, red ones those where their predicted answers differ."""
    figure = go.Figure()
    groups = [
        ("same answer", MATCH_COLOR, [p for p in pairs if p.agree]),
        ("different answers", NO_MATCH_COLOR, [p for p in pairs if not p.agree]),
    ]
    for name, color, members in groups:
        if not members:
            continue
        figure.add_trace(
            _points(
                name=name,
                color=color,
                x=[p.p_match_a for p in members],
                y=[p.p_match_b for p in members],
                hovertext=[
                    f"#{p.position}: {hover_text(p.text)}<br>"
                    f"A: {safe(p.predicted_a.strip())} (P(match) {p.p_match_a:.3f})<br>"
                    f"B: {safe(p.predicted_b.strip())} (P(match) {p.p_match_b:.3f})"
                    for p in members
                ],
                urls=[p.url for p in members],
            )
        )
    figure.add_shape(
        type="line", x0=0, y0=0, x1=1, y1=1, line={"color": "#9aa3ad", "dash": "dot", "width": 1}
    )
    figure.update_layout(
        template=TEMPLATE,
        height=480,
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
        xaxis={"title": {"text": f"P(match), run A: {run_label(run_a)}"}, "range": [-0.02, 1.02]},
        yaxis={
            "title": {"text": f"P(match), run B: {run_label(run_b)}"},
            "range": [-0.02, 1.02],
            "scaleanchor": "x",
            "automargin": True,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)


# ----------------------------------------------------------------------------- Winogender


def winogender_figure(points: Sequence[WinogenderPoint]) -> dict[str, Any]:
    """The paper's Fig. 6 for one run: p(female) - p(male) against the occupation's BLS percentage of
    women; each sentence a small point, each occupation the mean over its sentences with the standard
    deviation as error bar (the points the paper draws)."""
    figure = go.Figure()
    figure.add_trace(
        _points(
            name="sentence",
            color=SENTENCE_COLOR,
            x=[p.bls_percent_women for p in points],
            y=[p.difference for p in points],
            hovertext=[
                f"{safe(p.occupation)} ({p.bls_percent_women:.1f}% women)<br>"
                f"#{p.position}: {hover_text(p.text)}<br>"
                f"p(female) − p(male) {p.difference:+.3f}"
                for p in points
            ],
            urls=[p.url for p in points],
        )
    )
    occupations = occupation_points((p.occupation, p.bls_percent_women, p.difference) for p in points)
    figure.add_trace(
        go.Scatter(
            x=[o.bls_percent_women for o in occupations],
            y=[o.mean for o in occupations],
            mode="markers",
            name="occupation mean ± sd",
            marker={"color": MATCH_COLOR, "size": 8, "opacity": 0.9},
            error_y={
                "type": "data",
                "array": [o.sd or 0.0 for o in occupations],
                "thickness": 1,
                "width": 0,
                "color": "#7d9fc9",
            },
            hovertext=[
                f"{safe(o.occupation)} ({o.bls_percent_women:.1f}% women)<br>"
                f"mean p(female) − p(male) {o.mean:+.3f}"
                + ("" if o.sd is None else f" ± {o.sd:.3f} (sd)")
                + f" over {o.n} sentence{'s' if o.n != 1 else ''}"
                for o in occupations
            ],
            hoverinfo="text",
        )
    )
    figure.add_shape(
        type="line", x0=0, y0=0, x1=100, y1=0, line={"color": "#9aa3ad", "dash": "dot", "width": 1}
    )
    figure.update_layout(
        template=TEMPLATE,
        height=460,
        margin={"l": 10, "r": 10, "t": 30, "b": 50},
        xaxis={"title": {"text": "% women in the occupation (BLS 2019)"}, "range": [-2, 102]},
        yaxis={
            "title": {"text": "p(female pronoun) − p(male pronoun)"},
            "range": [-1.05, 1.05],
            "automargin": True,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)
