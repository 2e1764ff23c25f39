"""How a figure reads on a page: its value with the 95% interval, or "undefined" with the reason.
Every reason and value is escaped (format_html)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from analysis.agreement.figures import Figure

register = template.Library()


def format_value(value: float, style: str) -> str:
    if style == "percent":
        return f"{100 * value:.1f}%"
    if style == "decimal3":
        return f"{value:.3f}"
    return f"{value:.2f}"


@register.filter
def figure(fig: Figure | None, style: str = "decimal") -> str:
    """Compact, for tables: the value and its interval; an undefined figure says "undefined" and
    carries its reason in the tooltip."""
    if fig is None:
        return ""
    if not fig.defined:
        return format_html('<span class="muted undefined" title="{}">undefined</span>', fig.undefined)
    value = format_value(fig.value, style)
    if fig.has_ci:
        return format_html(
            '{} <span class="muted ci">[{}, {}]</span>',
            value,
            format_value(fig.ci_low, style),
            format_value(fig.ci_high, style),
        )
    return format_html('{} <span class="muted ci" title="{}">[no CI]</span>', value, fig.ci_undefined)


@register.filter
def figure_long(fig: Figure | None, style: str = "decimal") -> str:
    """In full, for a group's page: the reason is written out."""
    if fig is None:
        return ""
    if not fig.defined:
        return format_html(
            '<span class="undefined">undefined</span> <span class="muted">— {}</span>', fig.undefined
        )
    value = format_value(fig.value, style)
    if fig.has_ci:
        return format_html(
            '<strong>{}</strong> <span class="muted">(95% CI {} to {})</span>',
            value,
            format_value(fig.ci_low, style),
            format_value(fig.ci_high, style),
        )
    return format_html(
        '<strong>{}</strong> <span class="muted">(no interval: {})</span>', value, fig.ci_undefined
    )


@register.filter
def share(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


@register.filter
def reasons(excluded: dict[str, int]) -> str:
    """Why examples were left out, e.g. "not rated yet: 3; fewer than 3 ratings so far: 2"."""
    return "; ".join(f"{reason}: {count}" for reason, count in excluded.items())
