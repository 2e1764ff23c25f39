"""Scores become decisions (paper sections 2-6): the discriminator's answers give each candidate its
label probability and requirement scores, and its rank, the mean of them all (section 2); then the
floor (the label the discriminator finds the more likely), exact and near-duplicate removal, and the
top K per label, "or all examples where p_d predicts that y_i is the most likely label (whichever is
smaller)" (section 3.1). Ours, as options: batch calibration of the label question, a floor on
requirements, and balancing the labels to the scarcest one. Pure functions over candidates in
memory: generation.pipeline.run loads and saves them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from generation.catalog import formats
from generation.models import Candidate
from generation.pipeline.methods import BaseSpec, Method, method_for

Reason = Candidate.Reason
KEPT, DROPPED = Candidate.Decision.KEPT, Candidate.Decision.DROPPED
# A candidate within its run: the idempotent key (label, sample index).
Key = tuple[str, int]
# Where a candidate's scores keep the questions it was asked: {name: {"prompt", "choices"}}.
ASKED = "asked"


@dataclass(frozen=True)
class Scoring:
    """What apply_scores found besides the scores it set: the bias divided out of each calibrated
    question (None without calibration), and each candidate's failed requirements."""

    bias: dict[str, list[float]] | None
    failing: dict[Key, tuple[str, ...]] = field(default_factory=dict)


def candidate_key(candidate: Candidate) -> Key:
    return (candidate.label, candidate.sample_index)


def calibrate(p_yes: float, bias_yes: float) -> float:
    """P(yes) with the bias divided out: (p/b) / (p/b + (1-p)/(1-b))."""
    return calibrate_choices([p_yes, 1.0 - p_yes], [bias_yes, 1.0 - bias_yes])[0]


def calibrate_choices(p: Sequence[float], bias: Sequence[float]) -> list[float]:
    """Each choice's probability divided by its mean over the run, renormalised."""
    scaled = [value / max(b, 1e-6) for value, b in zip(p, bias, strict=True)]
    total = sum(scaled)
    return [value / total for value in scaled] if total > 0 else list(p)


def apply_scores(*, candidates: list[Candidate], spec: BaseSpec, phase: str = "main") -> Scoring:
    """Turns raw answer probabilities into each candidate's label probability, requirement scores and
    rank. With calibration (ours: the small-model profile's, off in the paper's), the label
    question's bias is its mean answer over the phase's candidates (batch calibration, Zhou et al.
    2023): the run asks for as many candidates of each label, so an unbiased discriminator would
    answer each choice about equally often on average. Small models say "No" to almost anything;
    without this a 0.5 floor keeps one label only. Requirement questions are never calibrated: a
    requirement is a property every candidate should have, so its mean answer is no bias to remove
    (divided out, a candidate rated 85% relevant in a run averaging 89% would come out at 0.40)."""
    method = method_for(spec)
    scored = [c for c in candidates if c.scores.get("raw_p")]
    bias: dict[str, list[float]] | None = None
    if method.sampling_profile(phase=phase).calibrate and scored:
        questions = method.questions(
            phase=phase, label=scored[0].label, text=scored[0].text, parsed=scored[0].parsed
        )
        bias = {}
        for question in questions:
            if not question.calibrate or question.name in spec.requirements:
                continue
            rows = np.array([c.scores["raw_p"][question.name] for c in scored], dtype=np.float64)
            bias[question.name] = [min(max(float(b), 1e-6), 1 - 1e-6) for b in rows.mean(axis=0)]
    failing: dict[Key, tuple[str, ...]] = {}
    for candidate in scored:
        raw = candidate.scores["raw_p"]
        probabilities = {
            name: calibrate_choices(p, bias[name]) if bias and name in bias else list(p)
            for name, p in raw.items()
        }
        reading = method.interpret(
            phase=phase, label=candidate.label, probabilities=probabilities, parsed=candidate.parsed
        )
        candidate.label_probability = min(1.0, max(0.0, reading.label_probability))
        asked = {ASKED: candidate.scores[ASKED]} if ASKED in candidate.scores else {}
        candidate.scores = {"raw_p": raw, **asked, **reading.scores, "rank": reading.rank}
        if reading.failing:
            failing[candidate_key(candidate)] = reading.failing
    return Scoring(bias=bias, failing=failing)


def _decide(candidate: Candidate, decision: str, reason: str, **detail) -> None:
    candidate.decision, candidate.reason, candidate.reason_detail = decision, reason, detail


def select_candidates(
    *,
    candidates: list[Candidate],
    spec: BaseSpec,
    embed: Callable[[list[str]], np.ndarray],
    failing: dict[Key, tuple[str, ...]] | None = None,
    phase: str = "main",
    labels: Sequence[str] | None = None,
    describe: Callable[[str], str] = str.strip,
) -> None:
    """Decides each scored candidate's fate in place: the floor, the requirement floor if the spec
    sets one, duplicates, then the top K per label by rank (balanced to the scarcest label only when
    spec.balance_labels asks). `failing` is apply_scores' list of failed requirements. Deterministic
    given its inputs, so the same candidates give the same set."""
    failing = failing or {}
    eligible = []
    for candidate in candidates:
        if candidate.reason == Reason.UNPARSEABLE or candidate.label_probability is None:
            continue
        p = candidate.label_probability
        failed = failing.get(candidate_key(candidate), ())
        if p < spec.floor:
            _decide(candidate, DROPPED, Reason.BELOW_FLOOR, label_probability=p, floor=spec.floor)
        elif failed:
            _decide(candidate, DROPPED, Reason.FAILED_REQUIREMENT, failing=list(failed))
        else:
            candidate.duplicate_of = None
            eligible.append(candidate)
    accepted = _without_duplicates(eligible, embed=embed, near_duplicate=spec.near_duplicate)
    method = method_for(spec)
    _keep_top_k(
        accepted,
        method=method,
        balance=spec.balance_labels and method.balance_labels,
        phase=phase,
        labels=labels or sorted({c.label for c in candidates}),
        describe=describe,
    )


def _without_duplicates(
    eligible: list[Candidate], *, embed: Callable[[list[str]], np.ndarray], near_duplicate: float
) -> list[Candidate]:
    """Drops exact duplicates (after normalising) and near ones (embedding cosine at or above
    `near_duplicate`); returns the rest, best first."""
    vectors = embed([c.text for c in eligible]) if eligible else np.zeros((0, 1), dtype=np.float32)
    # Best first, so the member of a duplicate group that survives is the best one.
    order = sorted(
        range(len(eligible)),
        key=lambda i: (
            -eligible[i].scores.get("rank", eligible[i].label_probability),
            eligible[i].label,
            eligible[i].sample_index,
        ),
    )
    accepted: list[int] = []
    seen: dict[str, int] = {}
    for i in order:
        candidate = eligible[i]
        key = formats.normalize_text(candidate.text)
        if key in seen:
            twin = eligible[seen[key]]
            candidate.duplicate_of = twin
            _decide(candidate, DROPPED, Reason.EXACT_DUPLICATE, twin=twin.pk)
            continue
        if accepted:
            similarity = vectors[accepted] @ vectors[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= near_duplicate:
                twin = eligible[accepted[best]]
                candidate.duplicate_of = twin
                _decide(
                    candidate, DROPPED, Reason.NEAR_DUPLICATE, twin=twin.pk, cosine=float(similarity[best])
                )
                continue
        seen[key] = i
        accepted.append(i)
    return [eligible[i] for i in accepted]


def _keep_top_k(
    accepted: list[Candidate],
    *,
    method: Method,
    balance: bool,
    phase: str,
    labels: Sequence[str],
    describe: Callable[[str], str],
) -> None:
    """Keeps each label's best `keep_per_label` of those left, by rank: the paper's "top 500, or all
    examples where p_d predicts that y_i is the most likely label (whichever is smaller)", the floor
    having dropped the others. One scarce label leaves the others whole. With `balance` (ours), every
    label keeps only as many as the scarcest one has."""
    by_label: dict[str, list[Candidate]] = {label: [] for label in labels}
    for candidate in accepted:
        by_label.setdefault(candidate.label, []).append(candidate)
    keep = method.keep_per_label(phase=phase)
    if balance:
        keep = min(keep, *(len(v) for v in by_label.values()))
    for label, members in by_label.items():
        for rank, candidate in enumerate(members, start=1):
            if rank <= keep:
                _decide(
                    candidate,
                    KEPT,
                    Reason.TOP_K,
                    rank=rank,
                    of=len(members),
                    label=describe(label),
                    label_probability=candidate.label_probability,
                )
            else:
                _decide(
                    candidate,
                    DROPPED,
                    Reason.NOT_TOP_K,
                    keep=keep,
                    label=describe(label),
                    rank=rank,
                    balanced=balance,
                )
