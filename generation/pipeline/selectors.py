"""Reads of generation runs and their candidates, shared by the generation pages and the API.

Every function here runs a fixed number of queries whatever the number of runs or candidates, so the
pages stay flat as runs grow to thousands of candidates."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from generation.models import Candidate, Example, GenerationRun
from generation.pipeline.run import reason_category

# The four stages a candidate passes, as counts; the same meaning as generate.generation_counts, but
# in one query, and annotatable on a list of runs.
COUNT_EXPRESSIONS = {
    "generated_count": Count("candidates"),
    "parsed_count": Count("candidates", filter=~Q(candidates__text="")),
    "scored_count": Count("candidates", filter=~Q(candidates__scores={})),
    "kept_count": Count("candidates", filter=Q(candidates__decision=Candidate.Decision.KEPT)),
}


def generation_run_get(*, pk: int) -> GenerationRun:
    return GenerationRun.objects.select_related("job", "dataset", "created_by").get(pk=pk)


def generation_run_list() -> QuerySet[GenerationRun]:
    """All runs, newest first, each with its counts annotated (one query per page)."""
    return (
        GenerationRun.objects.select_related("dataset", "job")
        .annotate(**COUNT_EXPRESSIONS)
        .order_by("-created_at", "-id")
    )


@dataclass
class RunSummary:
    counts: dict[str, int]
    # (category, count), most frequent first: what the dropped candidates died of.
    dropped: list[tuple[str, int]] = field(default_factory=list)
    # Every category any candidate's reason has, for the filter; "" (pending, no reason) excluded.
    categories: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def generation_run_summary(*, run: GenerationRun) -> RunSummary:
    """Counts, dropped counts by reason category, and the filters' options, in three queries."""
    counts = Candidate.objects.filter(run=run).aggregate(
        generated=Count("id"),
        parsed=Count("id", filter=~Q(text="")),
        scored=Count("id", filter=~Q(scores={})),
        kept=Count("id", filter=Q(decision=Candidate.Decision.KEPT)),
        dropped=Count("id", filter=Q(decision=Candidate.Decision.DROPPED)),
        pending=Count("id", filter=Q(decision=Candidate.Decision.PENDING)),
    )
    # Reasons carry numbers ("rank 3 of 40"), so they are grouped by the database first and by
    # category here; distinct reasons are far fewer than candidates once a run is large.
    dropped: Counter[str] = Counter()
    categories: set[str] = set()
    rows = (
        Candidate.objects.filter(run=run).values_list("decision", "reason").annotate(n=Count("id")).order_by()
    )
    for decision, reason, n in rows:
        category = reason_category(reason)
        if category:
            categories.add(category)
        if decision == Candidate.Decision.DROPPED:
            dropped[category or "no reason given"] += n
    labels = list(
        Candidate.objects.filter(run=run).order_by("label").values_list("label", flat=True).distinct()
    )
    return RunSummary(
        counts=counts,
        dropped=sorted(dropped.items(), key=lambda item: (-item[1], item[0])),
        categories=sorted(categories),
        labels=labels,
    )


def candidate_list(
    *, run: GenerationRun, decision: str = "", label: str = "", category: str = ""
) -> QuerySet[Candidate]:
    """A run's candidates in (label, sample index) order, narrowed by the page's filters. A category
    is the start of its reasons (see generate.reason_category), so it filters as a prefix."""
    candidates = run.candidates.select_related("example", "duplicate_of").order_by(
        "label", "sample_index", "id"
    )
    if decision:
        candidates = candidates.filter(decision=decision)
    if label:
        candidates = candidates.filter(label=label)
    if category:
        candidates = candidates.filter(reason__startswith=category)
    return candidates


def candidate_get(*, run_pk: int, pk: int) -> Candidate:
    return Candidate.objects.select_related("run__dataset", "example", "duplicate_of").get(
        run_id=run_pk, pk=pk
    )


def few_shot_examples_get(*, dataset_slug: str) -> list[dict]:
    """A dataset's examples as few-shot prompts for the multiple-choice method, in the released form."""
    rows = Example.objects.filter(dataset__slug=dataset_slug).order_by("position")
    return [
        {
            "question": e.question,
            "answer_matching_behavior": e.answer_matching_behavior,
            "answer_not_matching_behavior": e.answer_not_matching_behavior,
        }
        for e in rows.only("question", "answer_matching_behavior", "answer_not_matching_behavior")
    ]


def occupations_get(*, dataset_slug: str) -> list[dict]:
    """The occupations of a Winogender dataset (the release's winogenerated_occupations, or any
    winogender dataset's distinct occupations), with their other participant and BLS figures."""
    occupations: dict[str, dict] = {}
    for extra in (
        Example.objects.filter(dataset__slug=dataset_slug)
        .order_by("position")
        .values_list("extra", flat=True)
    ):
        name = str(extra.get("occupation", "")).strip().lower()
        if name and name not in occupations:
            keep = ("other_person", "BLS_percent_women_2019", "BLS_original_occupation")
            occupations[name] = {"occupation": name, **{k: extra[k] for k in keep if k in extra}}
    return list(occupations.values())
