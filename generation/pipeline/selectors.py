"""Reads of generation runs and their candidates, shared by the generation pages and the API.

Every function here runs a fixed number of queries whatever the number of runs or candidates, so the
pages stay flat as runs grow to thousands of candidates."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from generation.models import Candidate, Example, GenerationRun


def _stage_counts(prefix: str = "") -> dict[str, Count]:
    """The stages a candidate passes, as counts: over a run's candidates (no prefix) or annotated on
    runs ("candidates__"). The one definition of what generated, parsed, scored and kept mean."""
    return {
        "generated": Count(f"{prefix}id"),
        "parsed": Count(f"{prefix}id", filter=~Q(**{f"{prefix}text": ""})),
        "scored": Count(f"{prefix}id", filter=~Q(**{f"{prefix}scores": {}})),
        "kept": Count(f"{prefix}id", filter=Q(**{f"{prefix}decision": Candidate.Decision.KEPT})),
    }


def generation_counts(*, run: GenerationRun) -> dict[str, int]:
    """A run's candidates generated, parsed, scored and kept, in one query."""
    return Candidate.objects.filter(run=run).aggregate(**_stage_counts())


def generation_run_get(*, pk: int) -> GenerationRun:
    return GenerationRun.objects.select_related("job", "dataset", "created_by").get(pk=pk)


def generation_run_list() -> QuerySet[GenerationRun]:
    """All runs, newest first, each with its counts annotated (one query per page)."""
    return (
        GenerationRun.objects.select_related("dataset", "job")
        .annotate(**{f"{name}_count": count for name, count in _stage_counts("candidates__").items()})
        .order_by("-created_at", "-id")
    )


@dataclass
class RunSummary:
    counts: dict[str, int]
    # (reason, its display text, count), most frequent first: what the dropped candidates died of.
    dropped: list[tuple[str, str, int]] = field(default_factory=list)
    # (reason, display text) of every reason any candidate has, for the filter; pending ones have none.
    reasons: list[tuple[str, str]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def generation_run_summary(*, run: GenerationRun) -> RunSummary:
    """Counts, dropped counts by reason, and the filters' options, in three queries."""
    candidates = Candidate.objects.filter(run=run)
    counts = candidates.aggregate(
        **_stage_counts(),
        dropped=Count("id", filter=Q(decision=Candidate.Decision.DROPPED)),
        pending=Count("id", filter=Q(decision=Candidate.Decision.PENDING)),
    )
    display = dict(Candidate.Reason.choices)
    dropped: list[tuple[str, str, int]] = []
    reasons: set[str] = set()
    rows = candidates.values_list("decision", "reason").annotate(n=Count("id")).order_by()
    for decision, reason, n in rows:
        if reason:
            reasons.add(reason)
        if decision == Candidate.Decision.DROPPED:
            dropped.append((reason, display.get(reason, "No reason given"), n))
    labels = list(candidates.order_by("label").values_list("label", flat=True).distinct())
    return RunSummary(
        counts=counts,
        dropped=sorted(dropped, key=lambda row: (-row[2], row[1])),
        reasons=sorted(((reason, display[reason]) for reason in reasons), key=lambda item: item[1]),
        labels=labels,
    )


def candidate_list(
    *, run: GenerationRun, decision: str = "", label: str = "", reason: str = ""
) -> QuerySet[Candidate]:
    """A run's candidates in (label, sample index) order, narrowed by the page's filters."""
    candidates = run.candidates.select_related("example", "duplicate_of").order_by(
        "label", "sample_index", "id"
    )
    if decision:
        candidates = candidates.filter(decision=decision)
    if label:
        candidates = candidates.filter(label=label)
    if reason:
        candidates = candidates.filter(reason=reason)
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
