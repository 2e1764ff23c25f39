"""Plotly figures of a suite, built like generation.evaluation.charts (whose helpers they use): every
string from a dataset, a model spec or a model's metadata is escaped before it enters a figure, hover
text is `hovertext` with hoverinfo="text" (never a hovertemplate), and static/js/charts.js draws them
from json_script, so the Content Security Policy needs nothing inline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from generation.evaluation.charts import TEMPLATE, as_json, hover_text, safe
from generation.evaluation.suite_figures import Group, SuiteModel, TrendReport
from generation.evaluation.suite_selectors import SuiteResults

# Plotly's default colour cycle, named so a model keeps its colour on every figure of a suite.
COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]
SYMBOLS = [
    "circle",
    "diamond",
    "square",
    "triangle-up",
    "x",
    "triangle-down",
    "star",
    "cross",
    "pentagon",
    "hexagon",
]
ROW_HEIGHT = 22


def model_label(model: SuiteModel) -> str:
    """A model as legends name it (escaped: the spec is free text)."""
    return safe(model.spec)


def _size_text(model: SuiteModel) -> str:
    if model.parameters is None:
        return "size unknown"
    return (
        f"{model.parameters / 1e6:,.0f}M parameters"
        if model.parameters < 1e9
        else f"{model.parameters / 1e9:,.2f}B parameters"
    )


def _model_hover(model: SuiteModel) -> str:
    parts = [safe(model.spec)]
    if model.family:
        parts.append(safe(f"{model.family} · {model.training or 'training unknown'}"))
    parts.append(_size_text(model))
    return "<br>".join(parts)


def dot_plot(
    *, groups: Sequence[Group], models: Sequence[SuiteModel], dataset_urls: dict[str, str]
) -> dict[str, Any]:
    """% of answers matching the behavior per dataset (rows, grouped by collection and category)
    and model (a colour and marker each), with Wilson 95% intervals and a dashed line at 50%:
    the paper's Fig. 1/5. `models` are the chosen ones, in the order of the groups' cells."""
    rows = [row for group in groups for row in group.rows]
    # Each row is named by its slug, unique in the catalog; categories keep their order top down.
    categories = [row.dataset.slug for row in rows]
    figure = go.Figure()
    for column, model in enumerate(models):
        points = [(row, row.cells[column]) for row in rows if row.cells[column] is not None]
        points = [(row, cell) for row, cell in points if cell.percent is not None]
        if not points:
            continue
        figure.add_trace(
            go.Scatter(
                x=[cell.percent for _, cell in points],
                y=[row.dataset.slug for row, _ in points],
                mode="markers",
                name=model_label(model),
                marker={
                    "color": COLORS[model.index % len(COLORS)],
                    "symbol": SYMBOLS[model.index % len(SYMBOLS)],
                    "size": 9,
                },
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [cell.ci_high - cell.percent for _, cell in points],
                    "arrayminus": [cell.percent - cell.ci_low for _, cell in points],
                    "thickness": 1.2,
                    "width": 3,
                },
                hovertext=[
                    "<br>".join(
                        [
                            safe(row.dataset.slug),
                            hover_text(row.dataset.behavior, limit=80),
                            _model_hover(model),
                            f"{cell.percent:.1f}% matching (95% CI {cell.ci_low:.1f}–{cell.ci_high:.1f}),"
                            f" n={cell.n}",
                        ]
                        + ([safe(row.flag)] if row.flag else [])
                    )
                    for row, cell in points
                ],
                hoverinfo="text",
                customdata=[dataset_urls.get(row.dataset.slug, "") for row, _ in points],
            )
        )
    # The paper's reference: answers matching the behavior half the time, as a coin would.
    figure.add_shape(
        type="line",
        x0=50,
        x1=50,
        y0=0,
        y1=1,
        yref="paper",
        line={"color": "#6b7280", "dash": "dash", "width": 1.5},
    )
    # A thin rule and the group's name above each group after the first.
    start = 0
    for group in groups:
        if start:
            figure.add_shape(
                type="line",
                x0=0,
                x1=1,
                xref="paper",
                y0=start - 0.5,
                y1=start - 0.5,
                line={"color": "#cbd5e1", "width": 1},
            )
        figure.add_annotation(
            x=1,
            xref="paper",
            xanchor="right",
            y=start - 0.45,
            yanchor="bottom",
            text=safe(group.label),
            showarrow=False,
            font={"size": 11, "color": "#475569"},
        )
        start += len(group.rows)
    figure.update_layout(
        template=TEMPLATE,
        height=max(320, 160 + ROW_HEIGHT * len(categories)),
        margin={"l": 10, "r": 10, "t": 40, "b": 50},
        xaxis={"title": {"text": "% answers matching behavior"}, "range": [0, 100], "zeroline": False},
        yaxis={
            "categoryorder": "array",
            "categoryarray": categories,
            "autorange": "reversed",
            "automargin": True,
            "type": "category",
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)


def size_plot(*, results: SuiteResults, dataset_id: int, trend: TrendReport) -> dict[str, Any] | None:
    """% matching against parameters (log axis) for one dataset, one line per series (family and
    training), markers with Wilson 95% bars, and the fitted logistic curve of each trend that has
    one (dotted). None when no model with a known size has a finished run here."""
    series: dict[str, list[tuple[SuiteModel, Any]]] = {}
    for model in results.models:
        cell = results.cells.get((dataset_id, model.index))
        if cell is None or cell.percent is None or model.parameters is None:
            continue
        series.setdefault(model.series, []).append((model, cell))
    if not series:
        return None
    figure = go.Figure()
    for name, members in sorted(series.items()):
        members.sort(key=lambda mc: mc[0].parameters)
        # Each model keeps the colour and symbol it has in the dot plot; a series' line takes the
        # colour of its first model in the suite's list.
        line_color = COLORS[min(m.index for m, _ in members) % len(COLORS)]
        figure.add_trace(
            go.Scatter(
                x=[m.parameters for m, _ in members],
                y=[c.percent for _, c in members],
                mode="lines+markers",
                name=safe(name),
                marker={
                    "size": 10,
                    "color": [COLORS[m.index % len(COLORS)] for m, _ in members],
                    "symbol": [SYMBOLS[m.index % len(SYMBOLS)] for m, _ in members],
                },
                line={"color": line_color, "width": 1.5},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [c.ci_high - c.percent for _, c in members],
                    "arrayminus": [c.percent - c.ci_low for _, c in members],
                    "thickness": 1.2,
                    "width": 4,
                },
                hovertext=[
                    f"{_model_hover(m)}<br>{c.percent:.1f}% matching "
                    f"(95% CI {c.ci_low:.1f}–{c.ci_high:.1f}), n={c.n}"
                    for m, c in members
                ],
                hoverinfo="text",
            )
        )
    sizes = [m.parameters for members in series.values() for m, _ in members]
    low, high = min(sizes), max(sizes)
    for fit in trend.fits:
        if fit.slope is None:
            continue
        fit_sizes = [results.models[i].parameters for i in fit.models]
        lo, hi = min(fit_sizes), max(fit_sizes)
        xs = [lo * (hi / lo) ** (k / 20) for k in range(21)]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=[fit.predicted_percent(x) for x in xs],
                mode="lines",
                name=safe(f"fit: {fit.scope}"),
                line={"color": "#64748b", "dash": "dot", "width": 1.5},
                hoverinfo="skip",
            )
        )
    figure.add_shape(
        type="line",
        x0=0,
        x1=1,
        xref="paper",
        y0=50,
        y1=50,
        line={"color": "#6b7280", "dash": "dash", "width": 1.5},
    )
    span = [low / 1.6, high * 1.6]
    figure.update_layout(
        template=TEMPLATE,
        height=440,
        margin={"l": 10, "r": 10, "t": 40, "b": 50},
        xaxis={
            "title": {"text": "parameters (log scale)"},
            "type": "log",
            "range": [math.log10(span[0]), math.log10(span[1])],
        },
        yaxis={"title": {"text": "% answers matching behavior"}, "range": [0, 100], "automargin": True},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hovermode="closest",
    )
    return as_json(figure)
