"""Agreement figures of crowd ratings (Perez et al., 2022, section 3 and appendix B): pure computations
on arrays, no database.

Each example is rated by k workers on three questions: relevance (1-5), is the label correct (yes/no),
is the answer ambiguous (yes/no). The figures are computed over the examples with exactly k ratings;
the others are left out and counted with the reason (`RatingTable.excluded`).

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
from statsmodels.stats.inter_rater import fleiss_kappa

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

NO_EXAMPLES = "no example has {k} ratings yet"
ONE_EXAMPLE = "only one example has {k} ratings; agreement beyond chance needs at least two"
ONE_RATER = "each example has one rating (k = 1); agreement needs at least two raters"
NO_SPREAD = "a bootstrap over a single example has no spread"


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
    ratings of example i, ordered by worker id. `excluded` counts the examples left out, by reason."""

    k: int
    example_ids: np.ndarray  # (n,) int64
    label_confidence: np.ndarray  # (n,) float64, NaN where the dataset has none
    workers: np.ndarray  # (n, k) int64
    relevance: np.ndarray  # (n, k) int64, 1-5
    label_correct: np.ndarray  # (n, k) bool
    ambiguous: np.ndarray  # (n, k) bool
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
    left_out: Sequence[bool] | np.ndarray | None = None,
) -> RatingTable:
    """Builds the table of complete examples from ratings in long form (one entry per rating).

    `example_ids` are the examples in scope (rated or not) with their label confidence; each rating
    names its example, worker and answers. `left_out` marks ratings that do not count (workers who
    failed gold or were excluded): an example they rated may then fall below k ratings."""
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
        == len(left_out)
        == len(rating_example)
    ):
        raise ValueError("every rating needs an example, a worker and three answers")
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
    # Sort the kept ratings by example row, then worker: each complete example's k ratings are
    # then consecutive, and the same data always gives the same table.
    ordering = np.lexsort((rating_worker[take], rows))
    complete_rows = np.flatnonzero(complete)

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
        excluded=dict(excluded),
    )


def table_concat(tables: Sequence[RatingTable], *, k: int) -> RatingTable:
    """Several groups' tables as one (a collection, or everything pooled); all must share k."""
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
        )
    return RatingTable(
        k=k,
        example_ids=np.concatenate([t.example_ids for t in tables]),
        label_confidence=np.concatenate([t.label_confidence for t in tables]),
        workers=np.concatenate([t.workers for t in tables]),
        relevance=np.concatenate([t.relevance for t in tables]),
        label_correct=np.concatenate([t.label_correct for t in tables]),
        ambiguous=np.concatenate([t.ambiguous for t in tables]),
        excluded=dict(excluded),
    )


# ----------------------------------------------------------------------------- weighted statistics
#
# Every function below takes a weight matrix W of shape (m, n): m replicates over n examples, each row
# how many times each example was drawn. A row of ones is the data itself.


def _binary_counts(yes: np.ndarray, k: int) -> np.ndarray:
    """(n, 2) category counts per example: [no, yes] — the table statsmodels' fleiss_kappa takes."""
    return np.stack([k - yes, yes], axis=1).astype(np.float64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=np.abs(denominator) > EPS)
    return out


def weighted_fleiss(counts: np.ndarray, weights: np.ndarray, *, k: int) -> tuple[np.ndarray, ...]:
    """Fleiss' kappa, Randolph's kappa and the mean observed agreement P-bar per replicate, from a
    (n, c) table of category counts (each row sums to k)."""
    c = counts.shape[1]
    total = weights.sum(axis=1)
    per_example = ((counts**2).sum(axis=1) - k) / (k * (k - 1))
    observed = _safe_divide(weights @ per_example, total)
    shares = _safe_divide(weights @ counts, (k * total)[:, None])
    chance = (shares**2).sum(axis=1)
    fleiss = _safe_divide(observed - chance, 1 - chance)
    randolph = (observed - 1 / c) / (1 - 1 / c)
    return fleiss, randolph, observed


def _pair_products(counts: np.ndarray) -> np.ndarray:
    """(n, c*c): each example's contribution to Krippendorff's coincidence matrix times (k - 1)."""
    n, c = counts.shape
    outer = counts[:, :, None] * counts[:, None, :]
    outer[:, np.arange(c), np.arange(c)] -= counts
    return outer.reshape(n, c * c)


def weighted_krippendorff(
    pair_products: np.ndarray, weights: np.ndarray, *, k: int, c: int, ordinal: bool
) -> np.ndarray:
    """Krippendorff's alpha per replicate from the examples' coincidence contributions (complete
    data: every example has k pairable values). Nominal: distance 1 between different values;
    ordinal: the squared rank distance of Krippendorff (2011), from the replicate's own marginals."""
    m = weights.shape[0]
    coincidence = (weights @ pair_products).reshape(m, c, c) / (k - 1)
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


def _level_counts(levels: np.ndarray, n_levels: int, weights: np.ndarray) -> np.ndarray:
    """(m, n_levels): the weight of each level of a per-example value, per replicate."""
    m, n = weights.shape
    offsets = (np.arange(m)[:, None] * n_levels + levels[None, :]).ravel()
    return np.bincount(offsets, weights=weights.ravel(), minlength=m * n_levels).reshape(m, n_levels)


def _midranks(levels: np.ndarray, n_levels: int, weights: np.ndarray) -> np.ndarray:
    """(m, n) the midrank each example's value has in each replicate's resample."""
    counts = _level_counts(levels, n_levels, weights)
    below = np.cumsum(counts, axis=1) - counts
    return (below + (counts + 1) / 2)[:, levels]


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman's rho per replicate: Pearson's r of the midranks of the resampled data."""
    _, x_levels = np.unique(x, return_inverse=True)
    _, y_levels = np.unique(y, return_inverse=True)
    rx = _midranks(x_levels, x_levels.max() + 1, weights)
    ry = _midranks(y_levels, y_levels.max() + 1, weights)
    total = weights.sum(axis=1)
    mx = (weights * rx).sum(axis=1) / total
    my = (weights * ry).sum(axis=1) / total
    cov = (weights * rx * ry).sum(axis=1) / total - mx * my
    vx = (weights * rx * rx).sum(axis=1) / total - mx * mx
    vy = (weights * ry * ry).sum(axis=1) / total - my * my
    # Float error makes a constant resample's variance a tiny non-zero; such a resample has no rho.
    scale = np.maximum(np.abs(mx), 1.0) ** 2 * 1e-9
    vx = np.where(vx > scale, vx, 0.0)
    vy = np.where(vy > scale, vy, 0.0)
    return _safe_divide(cov, np.sqrt(vx * vy))


def weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per replicate (ties count one half, as in scikit-learn): the weighted share of
    (positive, negative) pairs the score orders correctly."""
    _, levels = np.unique(score, return_inverse=True)
    n_levels = levels.max() + 1
    pos = _level_counts(levels, n_levels, weights * positive)
    neg = _level_counts(levels, n_levels, weights * ~positive)
    neg_below = np.cumsum(neg, axis=1) - neg
    correct = (pos * (neg_below + neg / 2)).sum(axis=1)
    return _safe_divide(correct, pos.sum(axis=1) * neg.sum(axis=1))


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
        offsets = (np.arange(m)[:, None] * n + draws).ravel()
        yield np.bincount(offsets, minlength=m * n).reshape(m, n).astype(np.float64)
        done += m


def _interval(replicates: np.ndarray, *, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    finite = replicates[np.isfinite(replicates)]
    if len(finite) < MIN_DEFINED_SHARE * len(replicates) or not len(finite):
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _figure(value: float, replicates: np.ndarray | None, *, n: int) -> Figure:
    value = float(value)
    if n < 2 or replicates is None:
        return Figure(value=value, ci_undefined=NO_SPREAD)
    interval = _interval(replicates)
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
class GroupFigures:
    k: int
    examples: int
    ratings: int
    workers: int
    excluded: dict[str, int]
    label: BinaryAgreement
    majority_agrees: Figure  # share of examples where a majority of the k says the label is correct
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
            "label": {**self.label.as_dict(), "majority_agrees": self.majority_agrees.as_dict()},
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
    reps: dict[str, np.ndarray] | None,
    prefix: str,
    answers: tuple[str, str],
) -> BinaryAgreement:
    k, n = table.k, table.n
    size = _size_reason(table)
    counts = _binary_counts(yes, k)

    def rep(name: str) -> np.ndarray | None:
        return reps[f"{prefix}.{name}"] if reps is not None else None

    if n == 0:
        missing = Figure.missing(NO_EXAMPLES.format(k=k))
        return BinaryAgreement(missing, missing, missing, missing, missing)
    unanimous = _figure(np.mean((yes == 0) | (yes == k)), rep("unanimous"), n=n)
    if size:
        missing = Figure.missing(size)
        raw = missing if k < 2 else _figure(_observed_agreement(counts, k), rep("raw_agreement"), n=n)
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
        fleiss = _figure(fleiss_kappa(counts, method="fleiss"), rep("fleiss_kappa"), n=n)
        alpha = _figure(
            krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"),
            rep("krippendorff_alpha"),
            n=n,
        )
    randolph = _figure(fleiss_kappa(counts, method="randolph"), rep("randolph_kappa"), n=n)
    raw = _figure(_observed_agreement(counts, k), rep("raw_agreement"), n=n)
    return BinaryAgreement(fleiss, randolph, raw, unanimous, alpha)


def _observed_agreement(counts: np.ndarray, k: int) -> float:
    """Fleiss' P-bar: over examples, the share of ordered worker pairs that give the same answer."""
    return float((((counts**2).sum(axis=1) - k) / (k * (k - 1))).mean())


def _replicates(table: RatingTable, weights_iter: Iterator[np.ndarray]) -> dict[str, np.ndarray]:
    """Every figure's bootstrap replicates (one value per resample; NaN where undefined)."""
    k = table.k
    label_yes = table.label_correct.sum(axis=1)
    amb_yes = table.ambiguous.sum(axis=1)
    label_counts = _binary_counts(label_yes, k)
    amb_counts = _binary_counts(amb_yes, k)
    rel_counts = np.stack(
        [(table.relevance == level).sum(axis=1) for level in RELEVANCE_LEVELS], axis=1
    ).astype(np.float64)
    rel_sum = table.relevance.sum(axis=1).astype(np.float64)
    rel_squares = (table.relevance.astype(np.float64) ** 2).sum(axis=1)
    label_pairs = _pair_products(label_counts) if k > 1 else None
    amb_pairs = _pair_products(amb_counts) if k > 1 else None
    rel_pairs = _pair_products(rel_counts) if k > 1 else None
    majority = 2 * label_yes > k
    amb_onehot = (amb_yes[:, None] == np.arange(k + 1)[None, :]).astype(np.float64)
    conf_mask = np.isfinite(table.label_confidence)
    confidence = table.label_confidence[conf_mask]
    agreement_share = (label_yes / k)[conf_mask]

    chunks: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        chunks.setdefault(name, []).append(values)

    def one_chunk(weights: np.ndarray) -> None:
        total = weights.sum(axis=1)
        for prefix, yes, counts, pairs in (
            ("label", label_yes, label_counts, label_pairs),
            ("ambiguity", amb_yes, amb_counts, amb_pairs),
        ):
            add(f"{prefix}.unanimous", (weights @ ((yes == 0) | (yes == k)).astype(np.float64)) / total)
            if k > 1:
                fleiss, randolph, observed = weighted_fleiss(counts, weights, k=k)
                add(f"{prefix}.fleiss_kappa", fleiss)
                add(f"{prefix}.randolph_kappa", randolph)
                add(f"{prefix}.raw_agreement", observed)
                add(
                    f"{prefix}.krippendorff_alpha",
                    weighted_krippendorff(pairs, weights, k=k, c=2, ordinal=False),
                )
        add("majority_agrees", (weights @ majority.astype(np.float64)) / total)
        shares = (weights @ amb_onehot) / total[:, None]
        for yes in range(k + 1):
            add(f"ambiguity.share.{yes}", shares[:, yes])
        ratings = k * total
        mean = (weights @ rel_sum) / ratings
        add("relevance.mean", mean)
        squares = weights @ rel_squares
        add("relevance.sd", np.sqrt(np.maximum(_safe_divide(squares - ratings * mean**2, ratings - 1), 0)))
        rel_shares = (weights @ rel_counts) / ratings[:, None]
        for i, level in enumerate(RELEVANCE_LEVELS):
            add(f"relevance.share.{level}", rel_shares[:, i])
        if k > 1:
            add("relevance.alpha", weighted_krippendorff(rel_pairs, weights, k=k, c=5, ordinal=True))
        if conf_mask.any():
            conf_weights = weights[:, conf_mask]
            add("spearman", weighted_spearman(confidence, agreement_share, conf_weights))
            add("auc", weighted_auc(confidence, majority[conf_mask], conf_weights))

    for weights in weights_iter:
        with np.errstate(divide="ignore", invalid="ignore"):
            # A resample may lack what a figure needs (no example with a label confidence): NaN.
            one_chunk(weights)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def group_figures(
    table: RatingTable, *, replicates: int = DEFAULT_REPLICATES, seed: int = DEFAULT_SEED
) -> GroupFigures:
    """Every summary figure of one group, each with its 95% bootstrap interval over examples."""
    k, n = table.k, table.n
    reps = _replicates(table, bootstrap_weights(n, replicates=replicates, seed=seed)) if n >= 2 else None
    label_yes = table.label_correct.sum(axis=1)
    amb_yes = table.ambiguous.sum(axis=1)

    def rep(name: str) -> np.ndarray | None:
        return reps.get(name) if reps is not None else None

    no_examples = Figure.missing(NO_EXAMPLES.format(k=k))
    size = _size_reason(table)

    label = _binary_agreement(label_yes, table, reps, "label", ("label incorrect", "label correct"))
    ambiguity = _binary_agreement(amb_yes, table, reps, "ambiguity", ("not ambiguous", "ambiguous"))
    if n:
        majority_agrees = _figure(np.mean(2 * label_yes > k), rep("majority_agrees"), n=n)
        ambiguity_distribution = [
            (f"{yes}/{k}", _figure(np.mean(amb_yes == yes), rep(f"ambiguity.share.{yes}"), n=n))
            for yes in range(k + 1)
        ]
        values = table.relevance.ravel()
        relevance_mean = _figure(values.mean(), rep("relevance.mean"), n=n)
        relevance_sd = (
            _figure(values.std(ddof=1), rep("relevance.sd"), n=n)
            if len(values) > 1
            else Figure.missing("a standard deviation needs at least two ratings")
        )
        relevance_distribution = [
            (level, _figure(np.mean(values == level), rep(f"relevance.share.{level}"), n=n))
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
            rep("relevance.alpha"),
            n=n,
        )

    spearman_fig, auc_fig, with_confidence = _discriminator(table, label_yes, rep)
    return GroupFigures(
        k=k,
        examples=n,
        ratings=table.ratings,
        workers=table.worker_count,
        excluded=dict(table.excluded),
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


def _discriminator(table: RatingTable, label_yes: np.ndarray, rep) -> tuple[Figure, Figure, int]:
    k = table.k
    mask = np.isfinite(table.label_confidence)
    count = int(mask.sum())
    if table.n == 0:
        missing = Figure.missing(NO_EXAMPLES.format(k=k))
        return missing, missing, 0
    if count == 0:
        missing = Figure.missing("no example has a label confidence (the discriminator's score)")
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
            f"every example has the same share of workers ({int(share[0] * k)}/{k}) saying the label is "
            "correct, so there is no ranking"
        )
    else:
        spearman_fig = _figure(spearmanr(confidence, share).statistic, rep("spearman"), n=count)
    if majority.all() or not majority.any():
        side = "agrees" if majority.all() else "disagrees"
        auc_fig = Figure.missing(
            f"on every example a majority {side} with the label; AUC needs examples of both kinds"
        )
    else:
        auc_fig = _figure(roc_auc_score(majority, confidence), rep("auc"), n=count)
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
