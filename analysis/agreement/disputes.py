"""The project's disputed examples: where raters split, where a worker flagged the example as broken
(and no one has resolved it), and gold items some worker answered against the gold answer. A bounded,
paginated list for researchers to read, linked from the agreement pages."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Q, QuerySet

from annotation.models import AnnotationProject, ProjectItem, Response

SPLIT = "split"
FLAGGED = "flagged"
GOLD_MISS = "gold-miss"
REASONS = {SPLIT: "split votes", FLAGGED: "flagged", GOLD_MISS: "gold miss"}
DISPUTES_PER_PAGE = 50


class UnknownReason(ValueError):
    pass


def _gold_missed() -> Q:
    # The same rule as annotation.selectors._gold_correct, written for the database: a gold answer is
    # wrong when it contradicts a gold expectation that is set.
    return Q(item__is_gold=True) & (
        (Q(item__gold_label_correct__isnull=False) & ~Q(label_correct=F("item__gold_label_correct")))
        | (Q(item__gold_ambiguous__isnull=False) & ~Q(ambiguous=F("item__gold_ambiguous")))
    )


# Each reason as a condition on the per-item aggregates of _item_votes.
_REASON_FILTERS = {
    SPLIT: Q(answer_kinds__gt=1) | (Q(ambiguous_votes__gt=0) & Q(ambiguous_votes__lt=F("votes"))),
    FLAGGED: Q(open_flags__gt=0),
    GOLD_MISS: Q(gold_misses__gt=0),
}


def _responses(*, project: AnnotationProject, include_excluded: bool) -> QuerySet:
    # A worker a researcher excluded (a spammer, a bot) is left out of the agreement figures; their
    # votes, flags and gold misses would make disputes out of noise, so they are left out here too.
    responses = Response.objects.filter(project=project)
    return responses if include_excluded else responses.filter(worker__excluded=False)


def _item_votes(*, project: AnnotationProject, include_excluded: bool = False) -> QuerySet:
    """One row per rated item of the project with its votes summed up (grouped in the database)."""
    return (
        _responses(project=project, include_excluded=include_excluded)
        .values("item_id")
        .annotate(
            votes=Count("pk"),
            answer_kinds=Count("answer", distinct=True),
            ambiguous_votes=Count("pk", filter=Q(ambiguous=True)),
            open_flags=Count("pk", filter=Q(flagged_broken=True, flag_resolved_at__isnull=True)),
            gold_misses=Count("pk", filter=_gold_missed()),
        )
        .order_by()
    )


@dataclass(frozen=True)
class Dispute:
    item: ProjectItem
    reasons: list[str]
    votes: int
    answers: list[tuple[str, int]]  # (answer, workers who chose it), most chosen first
    ambiguous_votes: int
    gold_misses: int
    open_flags: int
    comments: list[dict] = field(default_factory=list)  # {"text", "flagged", "resolved"}

    @property
    def reason_labels(self) -> list[str]:
        return [REASONS[reason] for reason in self.reasons]


@dataclass(frozen=True)
class DisputeList:
    reason: str  # "" for every reason
    counts: dict[str, int]  # reason -> disputed items, and "all"
    page: Page
    disputes: list[Dispute]


def project_disputes(
    *,
    project: AnnotationProject,
    reason: str = "",
    page: str | int | None = 1,
    include_excluded: bool = False,
) -> DisputeList:
    """The project's disputed items, `DISPUTES_PER_PAGE` a page in dataset and position order, with
    why each is disputed and the number of items per reason; the responses of excluded workers count
    only with `include_excluded`. A constant number of queries: the counts, the page, and the page's
    items, answers and comments."""
    if reason and reason not in REASONS:
        raise UnknownReason(f"Unknown reason {reason!r}: choose one of {', '.join(REASONS)}.")
    votes = _item_votes(project=project, include_excluded=include_excluded)
    any_reason = Q()
    for condition in _REASON_FILTERS.values():
        any_reason |= condition
    counts = votes.aggregate(
        all=Count("item_id", filter=any_reason),
        **{key: Count("item_id", filter=condition) for key, condition in _REASON_FILTERS.items()},
    )
    chosen = votes.filter(_REASON_FILTERS[reason] if reason else any_reason).order_by(
        "item__example__dataset__slug", "item__example__position", "item_id"
    )
    paginator = Paginator(chosen, DISPUTES_PER_PAGE)
    paginator.count = counts[reason or "all"]  # known already: spares the paginator its count query
    page_obj = paginator.get_page(page)
    rows = list(page_obj.object_list)
    ids = [row["item_id"] for row in rows]
    items = ProjectItem.objects.select_related("example__dataset").in_bulk(ids)
    answers: dict[int, Counter] = defaultdict(Counter)
    comments: dict[int, list[dict]] = defaultdict(list)
    for item_id, answer, comment, flagged, resolved in (
        _responses(project=project, include_excluded=include_excluded)
        .filter(item_id__in=ids)
        .values_list("item_id", "answer", "comment", "flagged_broken", "flag_resolved_at")
        .order_by("created_at", "pk")
    ):
        answers[item_id][answer.strip() or "not recorded"] += 1
        if comment or flagged:
            comments[item_id].append({"text": comment, "flagged": flagged, "resolved": resolved is not None})
    disputes = [
        Dispute(
            item=items[row["item_id"]],
            reasons=[
                key
                for key, test in (
                    (SPLIT, row["answer_kinds"] > 1 or 0 < row["ambiguous_votes"] < row["votes"]),
                    (FLAGGED, row["open_flags"] > 0),
                    (GOLD_MISS, row["gold_misses"] > 0),
                )
                if test
            ],
            votes=row["votes"],
            answers=answers[row["item_id"]].most_common(),
            ambiguous_votes=row["ambiguous_votes"],
            gold_misses=row["gold_misses"],
            open_flags=row["open_flags"],
            comments=comments[row["item_id"]],
        )
        for row in rows
    ]
    return DisputeList(reason=reason, counts=counts, page=page_obj, disputes=disputes)


def project_dispute_count(*, project: AnnotationProject) -> int:
    """How many of the project's items are disputed, for the links to the list (one query)."""
    any_reason = Q()
    for condition in _REASON_FILTERS.values():
        any_reason |= condition
    return _item_votes(project=project).aggregate(n=Count("item_id", filter=any_reason))["n"]
