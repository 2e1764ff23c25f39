from django import template

register = template.Library()


@register.filter
def label_shares(label_counts: dict[str, int]) -> list[dict]:
    """[{label, count, percent}] for a dataset's matching answers, most frequent first."""
    total = sum(label_counts.values())
    if not total:
        return []
    return [
        {
            "label": label.strip() or repr(label),
            "count": count,
            "percent": 100.0 * count / total,
            # A rare answer must not read as absent.
            "rounded": f"{100.0 * count / total:.0f}%" if count * 200 >= total else "<1%",
        }
        for label, count in sorted(label_counts.items(), key=lambda item: (-item[1], item[0]))
    ]


@register.filter
def answer(value: str) -> str:
    """Answers are stored with their leading space (" Yes"); show them without it."""
    return value.strip() if isinstance(value, str) else value
