"""Agreement figures of crowd ratings (Perez et al., 2022, sections 3.3 and 4): pure computations on
arrays, no database.

Each example is rated by k workers on the paper's three questions: relevance ("Is this a good question
for testing the described behavior?", 1-5), the answer ("What is the correct answer to this question?
If it's ambiguous, make your best guess anyways.": the worker picks one of the example's answer
options) and ambiguity ("Is it unclear or ambiguous what the 'correct' answer should be?", yes/no). The
figures are computed over the examples with exactly k ratings; the others are left out and counted
with the reason (`RatingTable.excluded`).

The paper's inter-rater agreement is Fleiss' kappa on the workers' chosen answers, the categories
being the answer options (`AnswerAgreement`). A rating agrees with the label when its answer is the
label's answer; kappa on those agree/disagree votes is kept as a secondary figure (`GroupFigures.label`)
because it reads very differently: when nearly every vote is "agree", the chance agreement is close to
1 and kappa collapses towards 0 (or below) even when workers almost always agree.

Point estimates come from the reference libraries (statsmodels `fleiss_kappa`, the `krippendorff`
package, scipy, scikit-learn, crowd-kit). The 95% confidence intervals are percentile bootstraps over
examples. Resampling examples with replacement is the same as giving each example a weight (how many
times it was drawn), and every figure here is a function of weighted sums over examples, so the
bootstrap is a few matrix products on a (replicates x examples) weight matrix instead of a Python
loop over resamples; rank statistics (Spearman, AUC) use weighted midranks, which equal the midranks
of the resampled data. The tests check these formulas against the libraries on explicit resamples.

A figure that is not defined is never a NaN or a crash: it is a `Figure` with `value=None` and the
reason in `undefined` (e.g. every rating is the same answer, so kappa's chance agreement is 1).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from threadpoolctl import ThreadpoolController

RELEVANCE_LEVELS = (1, 2, 3, 4, 5)
DEFAULT_REPLICATES = 1000
DEFAULT_SEED = 0
CONFIDENCE = 0.95
# Bootstrap weights are drawn in chunks of at most this many cells, so pooling thousands of examples
# never holds a (replicates x examples) matrix of hundreds of megabytes.
CHUNK_CELLS = 2_000_000
# A CI needs at least this share of resamples where the figure is defined; otherwise it is not shown.
MIN_DEFINED_SHARE = 0.5
CALIBRATION_BINS = 10
EPS = 1e-12
_THREADPOOLS = ThreadpoolController()

NO_EXAMPLES = "no example has {k} ratings yet"
ONE_EXAMPLE = "only one example has {k} ratings; agreement beyond chance needs at least two"
ONE_RATER = "each example has one rating (k = 1); agreement needs at least two raters"
NO_SPREAD = "a bootstrap over a single example has no spread"
# Ratings stored before workers chose answers keep only their verdict on the label; an example with
# such a rating has no k chosen answers and is left out of the answer figures, counted under this.
NO_ANSWER = "a rating has no recorded answer (made before workers chose answers)"
NOT_RECORDED = -1


# ----------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Figure:
    """One figure: a value with its 95% bootstrap interval, or the reason it is undefined."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    undefined: str = ""
    ci_undefined: str = ""

    @classmethod
    def missing(cls, reason: str) -> Figure:
        return cls(value=None, undefined=reason)

    @property
    def defined(self) -> bool:
        return self.value is not None

    @property
    def has_ci(self) -> bool:
        return self.ci_low is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "ci": [self.ci_low, self.ci_high] if self.has_ci else None,
            "undefined": self.undefined or None,
            "ci_undefined": self.ci_undefined or None,
        }


@dataclass(frozen=True)
class RatingTable:
    """The complete examples of one group (a dataset, a collection, everything): row i holds the k
    ratings of example i, ordered by worker id; rows are in example id order (a pooled table: each
    part's rows in turn). `excluded` counts the examples left out, by reason."""

    k: int
    example_ids: np.ndarray  # (n,) int64
    label_confidence: np.ndarray  # (n,) float64, NaN where the dataset has none
    workers: np.ndarray  # (n, k) int64
    relevance: np.ndarray  # (n, k) int64, 1-5
    label_correct: np.ndarray  # (n, k) bool: the rating's answer is the label's answer
    ambiguous: np.ndarray  # (n, k) bool
    # (n, k) int64: each rating's chosen answer as an index into answer_options; NOT_RECORDED (-1) for
    # a rating made before workers chose answers.
    answers: np.ndarray
    answer_options: tuple[str, ...]  # the answer categories, whitespace-stripped (" Yes" -> "Yes")
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.example_ids)

    @property
    def ratings(self) -> int:
        return self.n * self.k

    @property
    def worker_count(self) -> int:
        return len(np.unique(self.workers)) if self.n else 0

    @property
    def excluded_count(self) -> int:
        return sum(self.excluded.values())

    @property
    def answered(self) -> np.ndarray:
        """(n,) bool: the examples whose k ratings all have a recorded answer."""
        return (self.answers != NOT_RECORDED).all(axis=1) if self.n else np.zeros(0, bool)

    @property
    def answer_excluded(self) -> dict[str, int]:
        """Examples left out of the answer figures only (they count everywhere else), by reason."""
        missing = int(self.n - self.answered.sum())
        return {NO_ANSWER: missing} if missing else {}


def answer_text(answer: str) -> str:
    """An answer as a category: " Yes" and "Yes" are one option (released files spell them with a
    leading space, datasets written elsewhere may not)."""
    return answer.strip()


def _answer_codes(
    answers: Sequence[str] | np.ndarray, options: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each answer's index in the categories: the given options first (in order), then any other
    answer seen, sorted; "" (not recorded) is NOT_RECORDED."""
    categories = dict.fromkeys(answer_text(option) for option in options)
    categories.pop("", None)
    texts = [answer_text(str(answer)) for answer in answers]
    for extra in sorted({text for text in texts if text and text not in categories}):
        categories[extra] = None
    index = {text: i for i, text in enumerate(categories)}
    codes = np.fromiter((index.get(text, NOT_RECORDED) for text in texts), dtype=np.int64, count=len(texts))
    return codes, tuple(categories)


def rating_table(
    *,
    k: int,
    example_ids: Sequence[int] | np.ndarray,
    label_confidence: Sequence[float | None] | np.ndarray,
    rating_example: Sequence[int] | np.ndarray,
    rating_worker: Sequence[int] | np.ndarray,
    relevance: Sequence[int] | np.ndarray,
    label_correct: Sequence[bool] | np.ndarray,
    ambiguous: Sequence[bool] | np.ndarray,
    answers: Sequence[str] | np.ndarray,
    answer_options: Sequence[str] = (),
    left_out: Sequence[bool] | np.ndarray | None = None,
) -> RatingTable:
    """Builds the table of complete examples from ratings in long form (one entry per rating).

    `example_ids` are the examples in scope (rated or not) with their label confidence; each rating
    names its example, worker and answers: `answers` is the option the worker chose ("" when it was
    not recorded), `label_correct` whether it is the label's answer. `answer_options` are the
    categories of the answer figures (the examples' options; an answer outside them is added). They
    do not change kappa, since an option nobody chose adds nothing to the chance agreement, but they
    fix the categories' order. `left_out` marks ratings that do not count (workers who failed gold or
    were excluded): an example they rated may then fall below k ratings."""
    if k < 1:
        raise ValueError("k must be at least 1")
    example_ids = np.asarray(example_ids, dtype=np.int64)
    confidence = np.array(
        [np.nan if c is None else c for c in label_confidence]
        if not isinstance(label_confidence, np.ndarray)
        else label_confidence,
        dtype=np.float64,
    )
    if confidence.shape != example_ids.shape:
        raise ValueError("one label confidence per example is needed")
    rating_example = np.asarray(rating_example, dtype=np.int64)
    rating_worker = np.asarray(rating_worker, dtype=np.int64)
    relevance = np.asarray(relevance, dtype=np.int64)
    label_correct = np.asarray(label_correct, dtype=bool)
    ambiguous = np.asarray(ambiguous, dtype=bool)
    left_out = np.zeros(len(rating_example), dtype=bool) if left_out is None else np.asarray(left_out, bool)
    if not (
        len(rating_worker)
        == len(relevance)
        == len(label_correct)
        == len(ambiguous)
        == len(answers)
        == len(left_out)
        == len(rating_example)
    ):
        raise ValueError("every rating needs an example, a worker and its answers")
    answer_codes, options = _answer_codes(answers, answer_options)
    if len(relevance) and (relevance.min() < 1 or relevance.max() > 5):
        raise ValueError("relevance ratings must be from 1 to 5")

    order = np.argsort(example_ids, kind="stable")
    sorted_ids = example_ids[order]
    if len(sorted_ids) > 1 and (np.diff(sorted_ids) == 0).any():
        raise ValueError("example ids must be unique")
    slot = np.searchsorted(sorted_ids, rating_example)
    if len(slot) and (
        (slot >= len(sorted_ids)).any()
        or (sorted_ids[np.minimum(slot, len(sorted_ids) - 1)] != rating_example).any()
    ):
        raise ValueError("a rating names an example that is not in the table")
    index = order[slot] if len(slot) else slot  # row of each rating's example in example_ids
    n_all = len(example_ids)
    total = np.bincount(index, minlength=n_all)
    kept_mask = ~left_out
    kept = np.bincount(index[kept_mask], minlength=n_all)

    excluded: Counter[str] = Counter()
    reasons = [
        (total == 0, "not rated yet"),
        ((total > 0) & (total < k), f"fewer than {k} ratings so far"),
        ((total >= k) & (kept < k), f"fewer than {k} ratings once left-out workers are removed"),
        (kept > k, f"more than {k} ratings"),
    ]
    for mask, reason in reasons:
        if count := int(mask.sum()):
            excluded[reason] = count

    complete = kept == k
    take = kept_mask & complete[index]
    rows = index[take]
    # Rows in example id order, each row's ratings in worker id order: the same ratings always give
    # the same table, whatever order the database returned them in (the bootstrap's resamples
    # index rows, so a fixed seed gives fixed intervals only if the rows are fixed too).
    ordering = np.lexsort((rating_worker[take], example_ids[rows]))
    complete_rows = np.flatnonzero(complete)
    complete_rows = complete_rows[np.argsort(example_ids[complete_rows], kind="stable")]

    def matrix(values: np.ndarray) -> np.ndarray:
        return values[take][ordering].reshape(len(complete_rows), k)

    return RatingTable(
        k=k,
        example_ids=example_ids[complete_rows],
        label_confidence=confidence[complete_rows],
        workers=matrix(rating_worker),
        relevance=matrix(relevance),
        label_correct=matrix(label_correct),
        ambiguous=matrix(ambiguous),
        answers=matrix(answer_codes),
        answer_options=options,
        excluded=dict(excluded),
    )


def table_concat(tables: Sequence[RatingTable], *, k: int) -> RatingTable:
    """Several groups' tables as one (a collection, or everything pooled); all must share k. The
    answer categories are the union of the tables' options (in order of first appearance), so
    datasets with different options (Yes/No beside (A)/(B)) pool into one table."""
    if any(table.k != k for table in tables):
        raise ValueError("pooled tables must have the same k")
    excluded: Counter[str] = Counter()
    for table in tables:
        excluded.update(table.excluded)
    if not tables:
        empty = np.zeros((0, k), dtype=np.int64)
        return RatingTable(
            k=k,
            example_ids=np.zeros(0, np.int64),
            label_confidence=np.zeros(0),
            workers=empty,
            relevance=empty,
            label_correct=empty.astype(bool),
            ambiguous=empty.astype(bool),
            answers=empty,
            answer_options=(),
        )
    union = tuple(dict.fromkeys(option for t in tables for option in t.answer_options))
    position = {option: i for i, option in enumerate(union)}
    recoded = []
    for t in tables:
        # Index NOT_RECORDED (-1) lands on the appended -1: unrecorded answers stay unrecorded.
        lookup = np.array([position[option] for option in t.answer_options] + [NOT_RECORDED], dtype=np.int64)
        recoded.append(lookup[t.answers])
    return RatingTable(
        k=k,
        example_ids=np.concatenate([t.example_ids for t in tables]),
        label_confidence=np.concatenate([t.label_confidence for t in tables]),
        workers=np.concatenate([t.workers for t in tables]),
        relevance=np.concatenate([t.relevance for t in tables]),
        label_correct=np.concatenate([t.label_correct for t in tables]),
        ambiguous=np.concatenate([t.ambiguous for t in tables]),
        answers=np.concatenate(recoded),
        answer_options=union,
        excluded=dict(excluded),
    )


# ----------------------------------------------------------------------------- weighted statistics
#
# A weight matrix W of shape (m, n) holds m replicates over n examples, each row how many times each
# example was drawn; a row of ones is the data itself. Most figures are functions of weighted sums
# of per-example features, S = W @ F: one matrix product gives them all (`_from_sums` functions).
# Rank statistics also need, per replicate, the weight of each distinct value (`_RankData`).


def _binary_counts(yes: np.ndarray, k: int) -> np.ndarray:
    """(n, 2) category counts per example: [no, yes] — the table statsmodels' fleiss_kappa takes."""
    return np.stack([k - yes, yes], axis=1).astype(np.float64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=np.abs(denominator) > EPS)
    return out


def _fleiss_features(counts: np.ndarray, k: int) -> np.ndarray:
    """(n, 1 + c): each example's share of agreeing ordered worker pairs, then its category counts."""
    per_example = ((counts**2).sum(axis=1) - k) / (k * (k - 1))
    return np.column_stack([per_example, counts])


def _kappa_from_sums(sums: np.ndarray, total: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Fleiss' kappa and P-bar from W @ _fleiss_features and the weight of the examples it sums."""
    observed = _safe_divide(sums[:, 0], total)
    shares = _safe_divide(sums[:, 1:], (k * total)[:, None])
    chance = (shares**2).sum(axis=1)
    return _safe_divide(observed - chance, 1 - chance), observed


def _fleiss_from_sums(sums: np.ndarray, total: np.ndarray, *, k: int) -> tuple[np.ndarray, ...]:
    """Fleiss' kappa, Randolph's kappa and P-bar from W @ _fleiss_features and W's row sums."""
    c = sums.shape[1] - 1
    fleiss, observed = _kappa_from_sums(sums, total, k=k)
    randolph = (observed - 1 / c) / (1 - 1 / c)
    return fleiss, randolph, observed


def answer_counts(table: RatingTable) -> np.ndarray:
    """(n, c) how many of each example's k workers chose each answer option (the table statsmodels'
    aggregate_raters makes of the answer codes); a row of zeros for an example without k recorded
    answers."""
    c = len(table.answer_options)
    counts = np.zeros((table.n, c), dtype=np.float64)
    if table.n and c:
        rows = np.repeat(np.arange(table.n), table.k)
        codes = table.answers.ravel()
        recorded = codes != NOT_RECORDED
        np.add.at(counts, (rows[recorded], codes[recorded]), 1.0)
        counts[~table.answered] = 0.0
    return counts


def weighted_answer_fleiss(
    counts: np.ndarray, answered: np.ndarray, weights: np.ndarray, *, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fleiss' kappa on chosen answers and its P-bar per replicate, over the drawn examples that have
    k recorded answers (`answered`); counts is (n, c) with any number c of options."""
    mask = np.asarray(answered, dtype=np.float64)
    features = _fleiss_features(counts, k) * mask[:, None]
    return _kappa_from_sums(weights @ features, weights @ mask, k=k)


def weighted_fleiss(counts: np.ndarray, weights: np.ndarray, *, k: int) -> tuple[np.ndarray, ...]:
    """Fleiss' kappa, Randolph's kappa and the mean observed agreement P-bar per replicate, from a
    (n, c) table of category counts (each row sums to k)."""
    return _fleiss_from_sums(weights @ _fleiss_features(counts, k), weights.sum(axis=1), k=k)


def _pair_products(counts: np.ndarray) -> np.ndarray:
    """(n, c*c): each example's contribution to Krippendorff's coincidence matrix times (k - 1)."""
    n, c = counts.shape
    outer = counts[:, :, None] * counts[:, None, :]
    outer[:, np.arange(c), np.arange(c)] -= counts
    return outer.reshape(n, c * c)


def _krippendorff_from_sums(pair_sums: np.ndarray, *, k: int, c: int, ordinal: bool) -> np.ndarray:
    """Krippendorff's alpha per replicate from W @ _pair_products (complete data: every example has k
    pairable values). Nominal: distance 1 between different values; ordinal: the squared rank
    distance of Krippendorff (2011), from the replicate's own marginals."""
    m = pair_sums.shape[0]
    coincidence = pair_sums.reshape(m, c, c) / (k - 1)
    marginals = coincidence.sum(axis=2)
    total = marginals.sum(axis=1)
    if ordinal:
        low = np.minimum.outer(np.arange(c), np.arange(c))
        high = np.maximum.outer(np.arange(c), np.arange(c))
        cumulative = np.concatenate([np.zeros((m, 1)), np.cumsum(marginals, axis=1)], axis=1)
        between = cumulative[:, high + 1] - cumulative[:, low]  # sum of n_g for g from low to high
        delta = (between - (marginals[:, low] + marginals[:, high]) / 2) ** 2
    else:
        delta = np.broadcast_to(1.0 - np.eye(c), (m, c, c))
    observed = (coincidence * delta).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * delta).sum(axis=(1, 2))
    return 1 - _safe_divide((total - 1) * observed, expected)


def weighted_krippendorff(
    pair_products: np.ndarray, weights: np.ndarray, *, k: int, c: int, ordinal: bool
) -> np.ndarray:
    """Krippendorff's alpha per replicate from the examples' coincidence contributions."""
    return _krippendorff_from_sums(weights @ pair_products, k=k, c=c, ordinal=ordinal)


@dataclass(frozen=True)
class _RankData:
    """What the rank statistics of a score against a share need, computed once per table: the
    examples that have a score, sorted by it, and where each distinct score starts."""

    columns: np.ndarray  # example columns with a score, in score order
    starts: np.ndarray  # first sorted position of each distinct score
    level: np.ndarray  # (n_scored,) the distinct score of each sorted column
    distinct: bool  # every score differs (the usual case): one level per column
    share_onehot: np.ndarray  # (n_scored, levels of the share)
    positive: np.ndarray  # (n_scored,) 1.0 where the example is positive, in score order

    @classmethod
    def build(cls, score: np.ndarray, share: np.ndarray, positive: np.ndarray) -> _RankData:
        columns = np.flatnonzero(np.isfinite(score))
        columns = columns[np.argsort(score[columns], kind="stable")]
        change = np.flatnonzero(np.diff(score[columns]) != 0) + 1
        starts = np.concatenate([[0], change]).astype(np.int64) if len(columns) else np.zeros(0, np.int64)
        level = np.zeros(len(columns), np.int64)
        level[change] = 1
        level = np.cumsum(level)
        _, share_level = np.unique(share[columns], return_inverse=True)
        onehot = (share_level[:, None] == np.arange(share_level.max(initial=-1) + 1)[None, :]).astype(
            np.float64
        )
        return cls(
            columns=columns,
            starts=starts,
            level=level,
            distinct=len(starts) == len(columns),
            share_onehot=onehot,
            positive=positive[columns].astype(np.float64),
        )


def _midrank_table(counts: np.ndarray) -> np.ndarray:
    """(m, levels): the midrank of each distinct value given the weight of every value."""
    return np.cumsum(counts, axis=1) - (counts - 1) / 2


def _rank_statistics(data: _RankData, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman's rho (Pearson's r of the midranks of the resampled data) and the ROC AUC (ties
    count one half, as in scikit-learn: the Mann-Whitney U of the midranks) per replicate.

    An example drawn w times holds w tied copies of its values, so its copies' ranks sum to w times
    its midrank: every sum over the resample is a weighted sum over examples."""
    w = weights[:, data.columns]
    total = w.sum(axis=1)
    if data.distinct:
        ranks = _midrank_table(w)
    else:
        ranks = _midrank_table(np.add.reduceat(w, data.starts, axis=1))[:, data.level]
    weighted = w * ranks
    mx = weighted.sum(axis=1) / total
    vx = (weighted * ranks).sum(axis=1) / total - mx**2
    share_counts = w @ data.share_onehot
    share_ranks = _midrank_table(share_counts)
    my = (share_counts * share_ranks).sum(axis=1) / total
    vy = (share_counts * share_ranks**2).sum(axis=1) / total - my**2
    cross = ((weighted @ data.share_onehot) * share_ranks).sum(axis=1) / total
    # Float error leaves a constant resample's variance a tiny non-zero; such a resample has no rho.
    scale = np.maximum(np.abs(mx), 1.0) ** 2 * 1e-9
    vx = np.where(vx > scale, vx, 0.0)
    vy = np.where(vy > scale, vy, 0.0)
    rho = _safe_divide(cross - mx * my, np.sqrt(vx * vy))

    positive = w @ data.positive
    negative = total - positive
    u = weighted @ data.positive - positive * (positive + 1) / 2
    auc = _safe_divide(u, positive * negative)
    return rho, auc


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho of x and y per replicate."""
    return _rank_statistics(_RankData.build(x, y, np.zeros(len(x), bool)), weights)[0]


def weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `score` for `positive` per replicate."""
    return _rank_statistics(_RankData.build(score, np.zeros(len(score)), positive), weights)[1]


# ----------------------------------------------------------------------------- bootstrap


def bootstrap_weights(
    n: int, *, replicates: int, seed: int, chunk: int | None = None
) -> Iterator[np.ndarray]:
    """Weight matrices of `replicates` resamples of n examples with replacement, in chunks; the same
    seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    chunk = chunk or max(1, min(replicates, CHUNK_CELLS // max(n, 1)))
    done = 0
    while done < replicates:
        m = min(chunk, replicates - done)
        draws = rng.integers(0, n, size=(m, n))
        draws += np.arange(m)[:, None] * n
        yield np.bincount(draws.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
        done += m


def _interval(replicates: np.ndarray, *, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The percentile interval of the replicates where the figure is defined; None when it is
    undefined on most of them."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < MIN_DEFINED_SHARE * len(replicates) or not len(finite):
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


class _Bootstrap:
    """The intervals of every figure of a group, from their replicates (one percentile call for all
    the figures defined on every resample)."""

    def __init__(self, replicates: dict[str, np.ndarray], *, confidence: float = CONFIDENCE):
        self.intervals: dict[str, tuple[float, float] | None] = {}
        names = list(replicates)
        if not names:
            return
        stack = np.vstack([replicates[name] for name in names])
        complete = np.isfinite(stack).all(axis=1)
        tail = (1 - confidence) / 2 * 100
        if complete.any():
            bounds = np.percentile(stack[complete], [tail, 100 - tail], axis=1)
            for column, row in enumerate(np.flatnonzero(complete)):
                self.intervals[names[row]] = (float(bounds[0, column]), float(bounds[1, column]))
        for row in np.flatnonzero(~complete):
            self.intervals[names[row]] = _interval(stack[row], confidence=confidence)


def _figure(value: float, boot: _Bootstrap | None, name: str, *, n: int) -> Figure:
    value = float(value)
    if n < 2 or boot is None:
        return Figure(value=value, ci_undefined=NO_SPREAD)
    interval = boot.intervals.get(name)
    if interval is None:
        return Figure(value=value, ci_undefined="the figure is undefined on most bootstrap resamples")
    return Figure(value=value, ci_low=interval[0], ci_high=interval[1])


# ----------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class BinaryAgreement:
    """Agreement of the k workers on one yes/no question."""

    fleiss_kappa: Figure
    randolph_kappa: Figure
    raw_agreement: Figure  # mean share of agreeing worker pairs (Fleiss' P-bar)
    unanimous: Figure  # share of examples where all k give the same answer
    krippendorff_alpha: Figure  # nominal

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).as_dict() for name in self.__dataclass_fields__}


@dataclass(frozen=True)
class AnswerAgreement:
    """Agreement of the k workers on the answer they chose, the categories being the answer options:
    the paper's inter-rater agreement (Fleiss' kappa 0.875 on persona; 1.0, 0.813 and 1.0 on the
    sycophancy datasets). Computed over the examples whose k ratings all have a recorded answer;
    the others are counted in `excluded`."""

    fleiss_kappa: Figure
    raw_agreement: Figure  # mean share of worker pairs who chose the same answer (Fleiss' P-bar)
    unanimous: Figure  # share of examples where all k chose the same answer
    examples: int
    options: tuple[str, ...]
    excluded: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fleiss_kappa": self.fleiss_kappa.as_dict(),
            "raw_agreement": self.raw_agreement.as_dict(),
            "unanimous": self.unanimous.as_dict(),
            "examples": self.examples,
            "options": list(self.options),
            "excluded": dict(self.excluded),
        }


@dataclass(frozen=True)
class GroupFigures:
    k: int
    examples: int
    ratings: int
    workers: int
    excluded: dict[str, int]
    answers: AnswerAgreement  # the paper's kappa, on the chosen answers
    # The same workers' answers read as votes "agrees with the label" / "does not" (secondary).
    label: BinaryAgreement
    majority_agrees: Figure  # share of examples where a majority of the k chose the label's answer
    ambiguity: BinaryAgreement
    ambiguity_distribution: list[tuple[str, Figure]]  # "j/k": share of examples j workers call ambiguous
    relevance_mean: Figure
    relevance_sd: Figure
    relevance_alpha: Figure  # Krippendorff's alpha, ordinal
    relevance_distribution: list[tuple[int, Figure]]  # 1-5: share of ratings
    discriminator_examples: int
    spearman: Figure  # label confidence vs the share of workers saying the label is correct
    auc: Figure  # label confidence predicting that a majority says the label is correct

    def ambiguity_share(self, yes: int) -> Figure:
        return self.ambiguity_distribution[yes][1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "examples": self.examples,
            "ratings": self.ratings,
            "workers": self.workers,
            "excluded": dict(self.excluded),
            "answers": self.answers.as_dict(),
            "agree_with_label": {**self.label.as_dict(), "majority_agrees": self.majority_agrees.as_dict()},
            "ambiguity": {
                **self.ambiguity.as_dict(),
                "distribution": {key: fig.as_dict() for key, fig in self.ambiguity_distribution},
            },
            "relevance": {
                "mean": self.relevance_mean.as_dict(),
                "sd": self.relevance_sd.as_dict(),
                "krippendorff_alpha": self.relevance_alpha.as_dict(),
                "distribution": {str(level): fig.as_dict() for level, fig in self.relevance_distribution},
            },
            "discriminator": {
                "examples": self.discriminator_examples,
                "spearman": self.spearman.as_dict(),
                "auc": self.auc.as_dict(),
            },
        }


def _size_reason(table: RatingTable) -> str:
    """Why no figure of agreement between raters can be computed on this table ("" when it can)."""
    if table.n == 0:
        return NO_EXAMPLES.format(k=table.k)
    if table.k < 2:
        return ONE_RATER
    if table.n < 2:
        return ONE_EXAMPLE.format(k=table.k)
    return ""


def _binary_agreement(
    yes: np.ndarray,
    table: RatingTable,
    boot: _Bootstrap | None,
    prefix: str,
    answers: tuple[str, str],
) -> BinaryAgreement:
    k, n = table.k, table.n
    size = _size_reason(table)
    counts = _binary_counts(yes, k)

    if n == 0:
        missing = Figure.missing(NO_EXAMPLES.format(k=k))
        return BinaryAgreement(missing, missing, missing, missing, missing)
    unanimous = _figure(np.mean((yes == 0) | (yes == k)), boot, f"{prefix}.unanimous", n=n)
    if size:
        missing = Figure.missing(size)
        raw = (
            missing
            if k < 2
            else _figure(_observed_agreement(counts, k), boot, f"{prefix}.raw_agreement", n=n)
        )
        return BinaryAgreement(missing, missing, raw, unanimous, missing)
    total_yes = int(yes.sum())
    if total_yes in (0, n * k):
        answer = answers[1] if total_yes else answers[0]
        why = f"every rating is “{answer}”, so the chance agreement is 1 and kappa is 0/0"
        fleiss = Figure.missing(why)
        alpha = Figure.missing(
            f"every rating is “{answer}”, so the expected disagreement is 0 and alpha is 0/0"
        )
    else:
        fleiss = _figure(fleiss_kappa(counts, method="fleiss"), boot, f"{prefix}.fleiss_kappa", n=n)
        alpha = _figure(
            krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"),
            boot,
            f"{prefix}.krippendorff_alpha",
            n=n,
        )
    randolph = _figure(fleiss_kappa(counts, method="randolph"), boot, f"{prefix}.randolph_kappa", n=n)
    raw = _figure(_observed_agreement(counts, k), boot, f"{prefix}.raw_agreement", n=n)
    return BinaryAgreement(fleiss, randolph, raw, unanimous, alpha)


def _answer_agreement(table: RatingTable, boot: _Bootstrap | None) -> AnswerAgreement:
    """Fleiss' kappa on the chosen answers (statsmodels on the answer counts), with P-bar and the
    unanimous share, over the examples with k recorded answers."""
    k = table.k
    answered = table.answered
    used = int(answered.sum())
    excluded = table.answer_excluded

    def result(fleiss: Figure, raw: Figure, unanimous: Figure) -> AnswerAgreement:
        return AnswerAgreement(fleiss, raw, unanimous, used, table.answer_options, excluded)

    if table.n == 0:
        missing = Figure.missing(NO_EXAMPLES.format(k=k))
        return result(missing, missing, missing)
    if used == 0:
        missing = Figure.missing(
            f"none of the {table.n} example(s) with {k} ratings has {k} recorded answers "
            "(their ratings were made before workers chose answers)"
        )
        return result(missing, missing, missing)
    codes = table.answers[answered]
    # statsmodels' own aggregation of the (subjects x raters) answers into category counts.
    counts, _ = aggregate_raters(codes, n_cat=len(table.answer_options))
    unanimous = _figure(np.mean(counts.max(axis=1) == k), boot, "answer.unanimous", n=used)
    if k < 2:
        missing = Figure.missing(ONE_RATER)
        return result(missing, missing, unanimous)
    raw = _figure(_observed_agreement(counts, k), boot, "answer.raw_agreement", n=used)
    if used < 2:
        why = (
            f"only one example has {k} recorded answers; agreement beyond chance needs at least two"
            if excluded
            else ONE_EXAMPLE.format(k=k)
        )
        return result(Figure.missing(why), raw, unanimous)
    chosen = np.flatnonzero(counts.sum(axis=0))
    if len(chosen) == 1:
        option = table.answer_options[int(chosen[0])]
        fleiss = Figure.missing(
            f"every recorded answer is “{option}”, so the chance agreement is 1 and kappa is 0/0"
        )
    else:
        fleiss = _figure(fleiss_kappa(counts, method="fleiss"), boot, "answer.fleiss_kappa", n=used)
    return result(fleiss, raw, unanimous)


def _observed_agreement(counts: np.ndarray, k: int) -> float:
    """Fleiss' P-bar: over examples, the share of ordered worker pairs that give the same answer."""
    return float((((counts**2).sum(axis=1) - k) / (k * (k - 1))).mean())


def _replicates(table: RatingTable, weights_iter: Iterator[np.ndarray]) -> dict[str, np.ndarray]:
    """Every figure's bootstrap replicates (one value per resample; NaN where undefined)."""
    k = table.k
    label_yes = table.label_correct.sum(axis=1)
    amb_yes = table.ambiguous.sum(axis=1)
    majority = 2 * label_yes > k
    rel_counts = np.stack([(table.relevance == level).sum(axis=1) for level in RELEVANCE_LEVELS], axis=1)

    # Every per-example feature a figure sums, side by side, so one matrix product per chunk of
    # resamples gives every weighted sum.
    features: dict[str, np.ndarray] = {
        "label.unanimous": (label_yes == 0) | (label_yes == k),
        "ambiguity.unanimous": (amb_yes == 0) | (amb_yes == k),
        "majority": majority,
        "ambiguity.shares": amb_yes[:, None] == np.arange(k + 1)[None, :],
        "relevance.sum": table.relevance.sum(axis=1),
        "relevance.squares": (table.relevance.astype(np.float64) ** 2).sum(axis=1),
        "relevance.counts": rel_counts,
    }
    answered = table.answered
    answers = answer_counts(table)
    features["answer.examples"] = answered
    features["answer.unanimous"] = answered & (answers.max(axis=1, initial=0) == k)
    if k > 1:
        for prefix, yes in (("label", label_yes), ("ambiguity", amb_yes)):
            counts = _binary_counts(yes, k)
            features[f"{prefix}.fleiss"] = _fleiss_features(counts, k)
            features[f"{prefix}.pairs"] = _pair_products(counts)
        features["relevance.pairs"] = _pair_products(rel_counts.astype(np.float64))
        if answers.shape[1]:
            # Examples without k recorded answers weigh nothing in the answer figures' sums.
            features["answer.fleiss"] = _fleiss_features(answers, k) * answered[:, None]
    blocks = [np.asarray(value, dtype=np.float64).reshape(table.n, -1) for value in features.values()]
    matrix = np.concatenate(blocks, axis=1)
    edges = np.cumsum([0] + [block.shape[1] for block in blocks])
    where = {name: slice(edges[i], edges[i + 1]) for i, name in enumerate(features)}
    ranks = _RankData.build(table.label_confidence, label_yes / k, majority)

    chunks: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        chunks.setdefault(name, []).append(values)

    def one_chunk(weights: np.ndarray) -> None:
        sums = weights @ matrix

        def get(name: str) -> np.ndarray:
            block = sums[:, where[name]]
            return block[:, 0] if block.shape[1] == 1 else block

        total = weights.sum(axis=1)
        answered_total = get("answer.examples")
        add("answer.unanimous", _safe_divide(get("answer.unanimous"), answered_total))
        if "answer.fleiss" in where:
            fleiss, observed = _kappa_from_sums(get("answer.fleiss"), answered_total, k=k)
            add("answer.fleiss_kappa", fleiss)
            add("answer.raw_agreement", observed)
        for prefix in ("label", "ambiguity"):
            add(f"{prefix}.unanimous", get(f"{prefix}.unanimous") / total)
            if k > 1:
                fleiss, randolph, observed = _fleiss_from_sums(get(f"{prefix}.fleiss"), total, k=k)
                add(f"{prefix}.fleiss_kappa", fleiss)
                add(f"{prefix}.randolph_kappa", randolph)
                add(f"{prefix}.raw_agreement", observed)
                add(
                    f"{prefix}.krippendorff_alpha",
                    _krippendorff_from_sums(get(f"{prefix}.pairs"), k=k, c=2, ordinal=False),
                )
        add("majority_agrees", get("majority") / total)
        shares = get("ambiguity.shares") / total[:, None]
        for yes in range(k + 1):
            add(f"ambiguity.share.{yes}", shares[:, yes])
        ratings = k * total
        mean = get("relevance.sum") / ratings
        add("relevance.mean", mean)
        variance = _safe_divide(get("relevance.squares") - ratings * mean**2, ratings - 1)
        add("relevance.sd", np.sqrt(np.maximum(variance, 0)))
        rel_shares = get("relevance.counts") / ratings[:, None]
        for i, level in enumerate(RELEVANCE_LEVELS):
            add(f"relevance.share.{level}", rel_shares[:, i])
        if k > 1:
            add("relevance.alpha", _krippendorff_from_sums(get("relevance.pairs"), k=k, c=5, ordinal=True))
        if len(ranks.columns):
            rho, auc = _rank_statistics(ranks, weights)
            add("spearman", rho)
            add("auc", auc)

    for weights in weights_iter:
        with np.errstate(divide="ignore", invalid="ignore"):
            # A resample may lack what a figure needs (no example with a label confidence): NaN.
            one_chunk(weights)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def group_figures(
    table: RatingTable, *, replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED
) -> GroupFigures:
    """Every summary figure of one group, each with its 95% bootstrap interval over examples."""
    # The matrices are small: BLAS threads cost more to wake than they save (about twice the time on
    # two cores), and a web server already runs requests side by side.
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        return _group_figures(table, replicates=replicates, seed=seed)


def _group_figures(table: RatingTable, *, replicates: int, seed: int) -> GroupFigures:
    k, n = table.k, table.n
    boot = None
    if n >= 2:
        boot = _Bootstrap(_replicates(table, bootstrap_weights(n, replicates=replicates, seed=seed)))
    label_yes = table.label_correct.sum(axis=1)
    amb_yes = table.ambiguous.sum(axis=1)

    no_examples = Figure.missing(NO_EXAMPLES.format(k=k))
    size = _size_reason(table)

    answers = _answer_agreement(table, boot)
    label = _binary_agreement(label_yes, table, boot, "label", ("label incorrect", "label correct"))
    ambiguity = _binary_agreement(amb_yes, table, boot, "ambiguity", ("not ambiguous", "ambiguous"))
    if n:
        majority_agrees = _figure(np.mean(2 * label_yes > k), boot, "majority_agrees", n=n)
        ambiguity_distribution = [
            (f"{yes}/{k}", _figure(np.mean(amb_yes == yes), boot, f"ambiguity.share.{yes}", n=n))
            for yes in range(k + 1)
        ]
        values = table.relevance.ravel()
        relevance_mean = _figure(values.mean(), boot, "relevance.mean", n=n)
        relevance_sd = (
            _figure(values.std(ddof=1), boot, "relevance.sd", n=n)
            if len(values) > 1
            else Figure.missing("a standard deviation needs at least two ratings")
        )
        relevance_distribution = [
            (level, _figure(np.mean(values == level), boot, f"relevance.share.{level}", n=n))
            for level in RELEVANCE_LEVELS
        ]
    else:
        majority_agrees = relevance_mean = relevance_sd = no_examples
        ambiguity_distribution = [(f"{yes}/{k}", no_examples) for yes in range(k + 1)]
        relevance_distribution = [(level, no_examples) for level in RELEVANCE_LEVELS]

    if size:
        relevance_alpha = Figure.missing(size)
    elif len(np.unique(table.relevance)) == 1:
        relevance_alpha = Figure.missing(
            f"every relevance rating is {int(table.relevance.flat[0])}, so the expected disagreement is 0 "
            "and alpha is 0/0"
        )
    else:
        relevance_alpha = _figure(
            krippendorff.alpha(
                value_counts=np.stack([(table.relevance == v).sum(axis=1) for v in RELEVANCE_LEVELS], axis=1),
                value_domain=list(RELEVANCE_LEVELS),
                level_of_measurement="ordinal",
            ),
            boot,
            "relevance.alpha",
            n=n,
        )

    spearman_fig, auc_fig, with_confidence = _discriminator(table, label_yes, boot)
    return GroupFigures(
        k=k,
        examples=n,
        ratings=table.ratings,
        workers=table.worker_count,
        excluded=dict(table.excluded),
        answers=answers,
        label=label,
        majority_agrees=majority_agrees,
        ambiguity=ambiguity,
        ambiguity_distribution=ambiguity_distribution,
        relevance_mean=relevance_mean,
        relevance_sd=relevance_sd,
        relevance_alpha=relevance_alpha,
        relevance_distribution=relevance_distribution,
        discriminator_examples=with_confidence,
        spearman=spearman_fig,
        auc=auc_fig,
    )


def _discriminator(
    table: RatingTable, label_yes: np.ndarray, boot: _Bootstrap | None
) -> tuple[Figure, Figure, int]:
    k = table.k
    mask = np.isfinite(table.label_confidence)
    count = int(mask.sum())
    if table.n == 0:
        missing = Figure.missing(NO_EXAMPLES.format(k=k))
        return missing, missing, 0
    if count == 0:
        missing = Figure.missing("no example has a label confidence from a discriminator")
        return missing, missing, 0
    if count < 2:
        missing = Figure.missing("only one example has a label confidence; a correlation needs at least two")
        return missing, missing, count
    confidence = table.label_confidence[mask]
    share = label_yes[mask] / k
    majority = (2 * label_yes > k)[mask]
    if np.all(confidence == confidence[0]):
        spearman_fig = Figure.missing("every example has the same label confidence, so there is no ranking")
    elif np.all(share == share[0]):
        spearman_fig = Figure.missing(
            f"every example has the same share of workers ({int(share[0] * k)}/{k}) choosing the label's "
            "answer, so there is no ranking"
        )
    else:
        spearman_fig = _figure(spearmanr(confidence, share).statistic, boot, "spearman", n=count)
    if majority.all() or not majority.any():
        side = "agrees" if majority.all() else "disagrees"
        auc_fig = Figure.missing(
            f"on every example a majority {side} with the label; AUC needs examples of both kinds"
        )
    else:
        auc_fig = _figure(roc_auc_score(majority, confidence), boot, "auc", n=count)
    return spearman_fig, auc_fig, count


# ----------------------------------------------------------------------------- details


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    examples: int
    mean_confidence: float
    mean_agreement: float  # mean share of workers who say the label is correct
    majority_agrees: float  # share of examples where a majority says it is correct


def calibration_bins(table: RatingTable, *, bins: int = CALIBRATION_BINS) -> list[CalibrationBin]:
    """Examples grouped by label confidence in equal-width bins over [0, 1]; empty bins left out."""
    mask = np.isfinite(table.label_confidence)
    confidence = table.label_confidence[mask]
    yes = table.label_correct.sum(axis=1)[mask]
    share = yes / table.k
    # The last bin is closed on the right so a confidence of exactly 1 has a bin.
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    result = []
    for b in range(bins):
        members = index == b
        if not members.any():
            continue
        result.append(
            CalibrationBin(
                low=b / bins,
                high=(b + 1) / bins,
                examples=int(members.sum()),
                mean_confidence=float(confidence[members].mean()),
                mean_agreement=float(share[members].mean()),
                majority_agrees=float((2 * yes[members] > table.k).mean()),
            )
        )
    return result


def majority_vote(table: RatingTable) -> np.ndarray:
    """Per example: 1 when a majority says the label is correct, 0 when a majority says it is not,
    -1 on a tie (possible only for even k)."""
    yes = table.label_correct.sum(axis=1)
    return np.where(2 * yes > table.k, 1, np.where(2 * yes < table.k, 0, -1))


@dataclass(frozen=True)
class WorkerReliability:
    worker_id: int
    ratings: int
    ds_accuracy: float  # P(answer = true label) under the Dawid-Skene model, weighted by its priors
    says_correct_when_correct: float | None
    says_incorrect_when_incorrect: float | None
    agrees_with_majority: float | None  # share of their answers equal to the majority vote (no ties)


@dataclass(frozen=True)
class DawidSkeneResult:
    """Labels aggregated by Dawid-Skene (crowd-kit) beside the majority vote, on "is the label
    correct?"; `undefined` says why the model could not be fitted (then the lists are empty)."""

    examples: int
    undefined: str = ""
    p_correct: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n,) posterior of "correct"
    majority: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n,) 1/0/-1 (tie)
    ds_correct_share: float | None = None
    majority_correct_share: float | None = None
    disagreements: int = 0  # examples where the two aggregates differ (ties not counted)
    ties: int = 0
    prior_correct: float | None = None
    workers: list[WorkerReliability] = field(default_factory=list)

    def as_dict(self, *, worker_names: dict[int, str] | None = None) -> dict[str, Any]:
        names = worker_names or {}
        return {
            "examples": self.examples,
            "undefined": self.undefined or None,
            "ds_correct_share": self.ds_correct_share,
            "majority_correct_share": self.majority_correct_share,
            "disagreements": self.disagreements,
            "majority_ties": self.ties,
            "prior_correct": self.prior_correct,
            "workers": [
                {
                    "worker": names.get(w.worker_id, str(w.worker_id)),
                    "ratings": w.ratings,
                    "ds_accuracy": w.ds_accuracy,
                    "says_correct_when_correct": w.says_correct_when_correct,
                    "says_incorrect_when_incorrect": w.says_incorrect_when_incorrect,
                    "agrees_with_majority": w.agrees_with_majority,
                }
                for w in self.workers
            ],
        }


def dawid_skene(table: RatingTable, *, n_iter: int = 100) -> DawidSkeneResult:
    """Dawid-Skene's EM estimate of each example's true answer to "is the label correct?" and of each
    worker's confusion matrix, beside the majority vote."""
    from crowdkit.aggregation import DawidSkene

    n, k = table.n, table.k
    if n == 0:
        return DawidSkeneResult(examples=0, undefined=NO_EXAMPLES.format(k=k))
    if n < 2:
        return DawidSkeneResult(examples=n, undefined=ONE_EXAMPLE.format(k=k))
    answers = table.label_correct.astype(np.int64)
    if answers.min() == answers.max():
        answer = "label correct" if answers.flat[0] else "label incorrect"
        return DawidSkeneResult(
            examples=n, undefined=f"every rating is “{answer}”: there is no disagreement to model"
        )
    frame = pd.DataFrame(
        {
            "task": np.repeat(np.arange(n), k),
            "worker": table.workers.ravel(),
            "label": answers.ravel(),
        }
    )
    model = DawidSkene(n_iter=n_iter)
    with warnings.catch_warnings():
        # crowd-kit 1.4.2 calls pandas APIs that pandas 3 deprecates; nothing we can act on.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(frame)
    p_correct = model.probas_.reindex(index=np.arange(n), columns=[1]).fillna(0.0)[1].to_numpy()
    majority = majority_vote(table)
    ds_label = (p_correct > 0.5).astype(np.int64)
    decided = majority >= 0
    priors = model.priors_.reindex([0, 1]).fillna(0.0)
    workers = []
    errors = model.errors_
    per_worker = frame.assign(majority=np.repeat(majority, k))
    for worker_id, rows in per_worker.groupby("worker", sort=True):
        confusion = errors.loc[worker_id].reindex(index=[0, 1], columns=[0, 1]).fillna(0.0)
        # errors_ holds P(worker answers `label` | true label `column`).
        right_when_correct = float(confusion.loc[1, 1])
        right_when_incorrect = float(confusion.loc[0, 0])
        accuracy = float(priors[1] * right_when_correct + priors[0] * right_when_incorrect)
        with_majority = rows[rows["majority"] >= 0]
        workers.append(
            WorkerReliability(
                worker_id=int(worker_id),
                ratings=len(rows),
                ds_accuracy=accuracy,
                says_correct_when_correct=right_when_correct,
                says_incorrect_when_incorrect=right_when_incorrect,
                agrees_with_majority=float((with_majority["label"] == with_majority["majority"]).mean())
                if len(with_majority)
                else None,
            )
        )
    return DawidSkeneResult(
        examples=n,
        p_correct=p_correct,
        majority=majority,
        ds_correct_share=float(ds_label.mean()),
        majority_correct_share=float((majority == 1).mean()),
        disagreements=int((ds_label[decided] != majority[decided]).sum()),
        ties=int((~decided).sum()),
        prior_correct=float(priors[1]),
        workers=workers,
    )
