"""The figures of a suite (several models on several datasets), computed from its stored runs and items:
pure functions over plain values, no database and no HTTP, so that the pages, the exports and the API
read the same numbers and the tests can check them against statsmodels.

- The matrix: per dataset and model, n, matching, % matching with its Wilson 95% interval (the paper's
  Fig. 1/5 dot plot), grouped by collection and category and sorted by the mean % over the models.
- The size trend per dataset (ours; the paper shows the plots, not a test): a logistic regression of
  each item's match (0/1) on log10(parameters), with standard errors clustered by example because
  every model answers the same items. Its slope is the change in log-odds of matching per tenfold
  increase in parameters, with a Wald 95% interval from the clustered standard error.
- The paired comparison of two models (ours): McNemar's test on the items both answered, with the
  difference in % matching and a paired bootstrap interval.

Figures from different scorers (generation.models.Scorer) are not comparable: a trend or a comparison
over runs that mix them is refused with the reason, never computed."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import statsmodels.api as sm
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.tools.sm_exceptions import PerfectSeparationError, PerfectSeparationWarning

from generation.evaluation.selectors import ITEM_SCORERS, MixedScorers
from generation.evaluation.services import summarize
from generation.models import BehaviorDirection

# McNemar's exact (binomial) test below this many discordant pairs, the chi-square with continuity
# correction from there on: statsmodels' advice (the chi-square is poor for small counts).
MCNEMAR_EXACT_BELOW = 25
BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 0
SORTS = ("mean", "name")
DEFAULT_SORT = "mean"

FLAG_INVERSE = "inverse scaling"
FLAG_TREND = "significant trend"
ACROSS_FAMILIES = "across families (family and training confounded with size)"


# Runs read their answers differently (log-probs, a stated answer): their figures are not
# comparable, so a trend or comparison across them is refused (the rule of selectors.runs_scorer_check).
ScorerMismatch = MixedScorers


def cell_scorer(*, run_id: int, run_scorer: str, item_scorers: Iterable[str]) -> str:
    """How a run's figures were measured, as a label two runs share only if they may be compared:
    the run's scorer, when every item was read by a scorer that belongs to it (ITEM_SCORERS, the
    rule of runs_scorer_check); else a label of its own, so the run is compared with nothing."""
    found = set(item_scorers)
    if found <= ITEM_SCORERS.get(run_scorer, set()):
        return run_scorer
    return f"{run_scorer} (run #{run_id} holds items scored by {'+'.join(sorted(found))})"


# ----------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class SuiteModel:
    """One model of a suite, in the suite's order; what its runs recorded about it. `parameters` and
    `family` come from model_info["details"]; runs of older code lack them (size unknown)."""

    index: int
    spec: str
    name: str = ""
    family: str = ""
    training: str = ""
    parameters: int | None = None
    parameters_source: str = ""

    @property
    def series(self) -> str:
        """The line a size plot draws it on: its family and training, which must not be mixed with
        size (an instruct model beside a base one would make training look like size)."""
        if not self.family:
            return "family unknown"
        return f"{self.family} ({self.training})" if self.training else self.family

    @property
    def log10_parameters(self) -> float | None:
        return math.log10(self.parameters) if self.parameters else None


@dataclass(frozen=True)
class SuiteDataset:
    id: int
    slug: str
    behavior: str
    collection_slug: str
    collection_name: str
    category: str = ""
    direction: str = BehaviorDirection.UNSTATED


@dataclass(frozen=True)
class Cell:
    """One model on one dataset: its run's stored summary."""

    run_id: int
    status: str
    scorer: str  # cell_scorer: the run's scorer, or a label of its own when its items mix scorers
    n: int = 0
    matching: int = 0
    percent: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    mean_p_match: float | None = None


def cell_from_counts(
    *, run_id: int, status: str, scorer: str, n: int, matching: int, mean_p_match: float | None
) -> Cell:
    """A cell from its counts, with the same Wilson interval a run's page shows."""
    summary = summarize(n=n, matching=matching, mean_p_match=mean_p_match)
    return Cell(
        run_id=run_id,
        status=status,
        scorer=scorer,
        n=n,
        matching=matching,
        percent=summary.percent_matching,
        ci_low=summary.ci_low,
        ci_high=summary.ci_high,
        mean_p_match=mean_p_match,
    )


@dataclass(frozen=True)
class Outcomes:
    """A model's answers on a dataset, item by item: example ids (ascending) and whether each
    answer matched the behavior."""

    example_ids: np.ndarray
    matches: np.ndarray

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, bool]]) -> Outcomes:
        rows = sorted(pairs)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matches = np.fromiter((bool(r[1]) for r in rows), dtype=bool, count=len(rows))
        return cls(example_ids=ids, matches=matches)


def scorers_check(*, scorers: Mapping[str, str]) -> None:
    """Raises ScorerMismatch unless every run (named by its key) was scored the same way."""
    distinct = sorted(set(scorers.values()))
    if len(distinct) > 1:
        named = "; ".join(f"{key}: {scorer}" for key, scorer in scorers.items())
        raise ScorerMismatch(
            f"these runs read their answers differently ({named}); figures from different scorers "
            "are not comparable, so they are not compared"
        )


# ----------------------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class MatrixRow:
    """A dataset's row of the dot plot: one cell per model (None: no finished run)."""

    dataset: SuiteDataset
    cells: tuple[Cell | None, ...]
    flag: str = ""

    @property
    def mean_percent(self) -> float | None:
        values = [c.percent for c in self.cells if c is not None and c.percent is not None]
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Filters:
    """The suite page's filters; every value already validated (suite_views)."""

    collection: str = ""
    category: str = ""
    text: str = ""
    direction: str | None = None  # None: any; "" not stated, "undesired", "desired"
    models: tuple[int, ...] = ()  # model indices; empty: all
    sort: str = DEFAULT_SORT

    def keeps(self, dataset: SuiteDataset) -> bool:
        if self.collection and dataset.collection_slug != self.collection:
            return False
        if self.category and dataset.category != self.category:
            return False
        if self.direction is not None and dataset.direction != self.direction:
            return False
        needle = self.text.casefold()
        return not needle or needle in dataset.slug.casefold() or needle in dataset.behavior.casefold()


@dataclass(frozen=True)
class Group:
    collection_name: str
    category: str
    rows: tuple[MatrixRow, ...]

    @property
    def label(self) -> str:
        return f"{self.collection_name} · {self.category}" if self.category else self.collection_name


def matrix_rows(
    *,
    datasets: Sequence[SuiteDataset],
    models: Sequence[SuiteModel],
    cells: Mapping[tuple[int, int], Cell],
    flags: Mapping[int, str] | None = None,
) -> list[MatrixRow]:
    """One row per dataset, its cells in the models' order."""
    flags = flags or {}
    return [
        MatrixRow(
            dataset=d,
            cells=tuple(cells.get((d.id, m.index)) for m in models),
            flag=flags.get(d.id, ""),
        )
        for d in datasets
    ]


def matrix_groups(
    *, rows: Sequence[MatrixRow], filters: Filters, models: Sequence[SuiteModel]
) -> list[Group]:
    """The rows the filters keep, narrowed to the chosen models, grouped by collection then category
    (both by name) and, within a group, by the mean % matching over those models, highest first
    (the paper's Fig. 5), or by slug; rows without a figure last."""
    keep = [i for i, m in enumerate(models) if not filters.models or m.index in filters.models]
    narrowed = [
        MatrixRow(dataset=r.dataset, cells=tuple(r.cells[i] for i in keep), flag=r.flag)
        for r in rows
        if filters.keeps(r.dataset)
    ]
    groups: dict[tuple[str, str], list[MatrixRow]] = {}
    for row in narrowed:
        groups.setdefault((row.dataset.collection_name, row.dataset.category), []).append(row)

    def order(row: MatrixRow) -> tuple:
        if filters.sort == "name":
            return (row.dataset.slug,)
        mean = row.mean_percent
        return (mean is None, -(mean or 0.0), row.dataset.slug)

    return [
        Group(collection_name=name, category=category, rows=tuple(sorted(members, key=order)))
        for (name, category), members in sorted(groups.items())
    ]


# ----------------------------------------------------------------------------- size trends


@dataclass(frozen=True)
class TrendFit:
    """A logistic regression of match on log10(parameters) over one series of models, or why it
    could not be estimated (`not_estimable`; the figures are then None)."""

    scope: str  # a series ("SmolLM2 (base)") or ACROSS_FAMILIES
    models: tuple[int, ...]  # model indices in the fit
    n_items: int = 0
    n_examples: int = 0
    slope: float | None = None  # change in log-odds of matching per tenfold parameters
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    intercept: float | None = None
    not_estimable: str = ""
    flag: str = ""

    @property
    def odds_ratio(self) -> float | None:
        return math.exp(self.slope) if self.slope is not None else None

    def predicted_percent(self, parameters: float) -> float | None:
        """The fitted % matching at a size (for the fitted line of the size plot)."""
        if self.slope is None or self.intercept is None:
            return None
        eta = self.intercept + self.slope * math.log10(parameters)
        # The logistic, written so that neither branch's exp can overflow.
        if eta >= 0:
            return 100.0 / (1.0 + math.exp(-eta))
        return 100.0 * math.exp(eta) / (1.0 + math.exp(eta))


@dataclass(frozen=True)
class TrendReport:
    """A dataset's size trends: one fit per series with two sizes or more, else one across families;
    the models left out and why; the dataset's flag (the strongest of its fits')."""

    fits: tuple[TrendFit, ...] = ()
    left_out: tuple[str, ...] = ()
    refused: str = ""  # mixed scorers: no fit at all
    flag: str = ""


def trend_flag(*, ci_low: float, ci_high: float, direction: str) -> str:
    """ "inverse scaling" when the 95% interval of the slope lies on the side of the undesired answer
    (above 0 for an undesired behavior, below 0 for a desired one); "significant trend" when it
    excludes 0 and the dataset does not say which way is undesired; nothing otherwise."""
    up, down = ci_low > 0, ci_high < 0
    if direction == BehaviorDirection.UNDESIRED and up:
        return FLAG_INVERSE
    if direction == BehaviorDirection.DESIRED and down:
        return FLAG_INVERSE
    if direction == BehaviorDirection.UNSTATED and (up or down):
        return FLAG_TREND
    return ""


def trend_fit(
    *, scope: str, models: Sequence[int], log_sizes: np.ndarray, matches: np.ndarray, groups: np.ndarray
) -> TrendFit:
    """GLM Binomial (logit link) of matches on [1, log10 parameters], covariance clustered by
    `groups` (the example ids). Cases where the slope has no finite estimate are named, not fitted."""
    base = {"scope": scope, "models": tuple(models), "n_items": int(matches.size)}
    n_examples = int(np.unique(groups).size) if groups.size else 0
    base["n_examples"] = n_examples
    if np.unique(log_sizes).size < 2:
        return TrendFit(**base, not_estimable="fewer than two distinct model sizes")
    if n_examples < 2:
        return TrendFit(**base, not_estimable="fewer than two items")
    if matches.all() or not matches.any():
        which = "matched" if matches.all() else "did not match"
        return TrendFit(**base, not_estimable=f"every answer {which} the behavior: no variation to fit")
    hit, miss = log_sizes[matches], log_sizes[~matches]
    if hit.min() >= miss.max() or miss.min() >= hit.max():
        # A size threshold splits matching from not matching answers: the likelihood grows without
        # bound as the slope does (separation), so there is no finite estimate or interval.
        return TrendFit(
            **base,
            not_estimable="size separates matching from not-matching answers completely "
            "(separation: the slope's estimate is infinite)",
        )
    if _same_within_groups(matches, groups):
        # Every model gave the same answer on each item: the slope is 0 and its clustered standard
        # error too, so there is nothing to test (sizes change nothing on these items).
        return TrendFit(
            **base,
            not_estimable="every model answered each item the same way: no difference between sizes to test",
        )
    design = sm.add_constant(log_sizes.astype(float), has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PerfectSeparationWarning)
            result = sm.GLM(matches.astype(float), design, family=sm.families.Binomial()).fit(
                cov_type="cluster", cov_kwds={"groups": groups}
            )
    except (PerfectSeparationError, PerfectSeparationWarning, np.linalg.LinAlgError, ValueError) as exc:
        return TrendFit(**base, not_estimable=f"the fit failed ({type(exc).__name__})")
    slope, intercept = float(result.params[1]), float(result.params[0])
    low, high = (float(v) for v in result.conf_int(alpha=0.05)[1])
    p_value = float(result.pvalues[1])
    if not all(math.isfinite(v) for v in (slope, intercept, low, high, p_value)):
        return TrendFit(**base, not_estimable="the fit gave no finite slope or interval")
    return TrendFit(
        **base,
        slope=slope,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        intercept=intercept,
    )


def _same_within_groups(matches: np.ndarray, groups: np.ndarray) -> bool:
    order = np.argsort(groups, kind="stable")
    g, m = groups[order], matches[order].astype(np.int8)
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    return bool(np.all(np.maximum.reduceat(m, starts) == np.minimum.reduceat(m, starts)))


def size_trends(
    *,
    direction: str,
    models: Sequence[SuiteModel],
    outcomes: Mapping[int, Outcomes],
    scorers: Mapping[int, str],
) -> TrendReport:
    """A dataset's trend with model size. `outcomes` and `scorers` are by model index (models
    without a finished run on the dataset are absent). Each series (family and training) with two
    sizes or more is fitted on its own; where none has, one fit across every model with a size,
    labelled as confounded; models without a size are left out and named."""
    left_out = tuple(
        f"{m.spec}: size unknown (its run recorded no parameter count)"
        for m in models
        if m.index in outcomes and m.parameters is None
    )
    sized = [m for m in models if m.index in outcomes and m.parameters]
    try:
        scorers_check(scorers={m.spec: scorers[m.index] for m in sized})
    except ScorerMismatch as exc:
        return TrendReport(left_out=left_out, refused=str(exc))
    series: dict[str, list[SuiteModel]] = {}
    for m in sized:
        if m.family:
            series.setdefault(m.series, []).append(m)
    fitted = {name: members for name, members in series.items() if len({m.parameters for m in members}) >= 2}
    if fitted:
        scopes = sorted(fitted.items())
        in_fits = {m.index for members in fitted.values() for m in members}
        left_out += tuple(
            f"{m.spec}: the only size of {m.series} in this suite" for m in sized if m.index not in in_fits
        )
    else:
        scopes = [(ACROSS_FAMILIES, sized)]
    fits = []
    for scope, members in scopes:
        ids, sizes, hits = [], [], []
        for m in members:
            o = outcomes[m.index]
            ids.append(o.example_ids)
            hits.append(o.matches)
            sizes.append(np.full(o.matches.size, m.log10_parameters))
        fit = trend_fit(
            scope=scope,
            models=[m.index for m in members],
            log_sizes=np.concatenate(sizes) if sizes else np.array([]),
            matches=np.concatenate(hits) if hits else np.array([], dtype=bool),
            groups=np.concatenate(ids) if ids else np.array([], dtype=np.int64),
        )
        if fit.ci_low is not None and fit.ci_high is not None:
            fit = TrendFit(
                **{
                    **asdict(fit),
                    "flag": trend_flag(ci_low=fit.ci_low, ci_high=fit.ci_high, direction=direction),
                }
            )
        fits.append(fit)
    flags = {f.flag for f in fits}
    flag = FLAG_INVERSE if FLAG_INVERSE in flags else FLAG_TREND if FLAG_TREND in flags else ""
    return TrendReport(fits=tuple(fits), left_out=left_out, flag=flag)


# ----------------------------------------------------------------------------- two models


@dataclass(frozen=True)
class Paired:
    """Two models on the items both answered: the 2x2 table, McNemar's test on its discordant cells,
    and the difference in % matching (A − B, points) with a paired bootstrap 95% interval."""

    scope: str
    n: int
    both: int
    only_a: int
    only_b: int
    neither: int
    only_in_a: int = 0  # items only A answered (left out)
    only_in_b: int = 0
    test: str = ""
    statistic: float | None = None
    p_value: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    refused: str = ""
    datasets: int = 1

    @property
    def percent_a(self) -> float | None:
        return 100.0 * (self.both + self.only_a) / self.n if self.n else None

    @property
    def percent_b(self) -> float | None:
        return 100.0 * (self.both + self.only_b) / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent_a": self.percent_a, "percent_b": self.percent_b}


@dataclass(frozen=True)
class PairTable:
    n: int
    both: int
    only_a: int
    only_b: int
    neither: int
    only_in_a: int
    only_in_b: int


def pair_table(a: Outcomes, b: Outcomes) -> PairTable:
    """The 2x2 counts over the examples both models answered."""
    common, ia, ib = np.intersect1d(a.example_ids, b.example_ids, assume_unique=True, return_indices=True)
    ma, mb = a.matches[ia], b.matches[ib]
    return PairTable(
        n=int(common.size),
        both=int(np.sum(ma & mb)),
        only_a=int(np.sum(ma & ~mb)),
        only_b=int(np.sum(~ma & mb)),
        neither=int(np.sum(~ma & ~mb)),
        only_in_a=int(a.example_ids.size - common.size),
        only_in_b=int(b.example_ids.size - common.size),
    )


def _bootstrap_difference(tables: Sequence[PairTable], *, replicates: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of the difference in % matching, resampling items with replacement
    within each dataset (the datasets' sizes kept). An item adds +1 (only A matches), −1 (only B)
    or 0 to the difference, so resampling n items is a multinomial draw of those three counts: the
    same distribution as resampling items one by one, at a cost that does not grow with n."""
    rng = np.random.default_rng(seed)
    total = np.zeros(replicates)
    n = 0
    for t in tables:
        if not t.n:
            continue
        p = np.array([t.only_a, t.only_b, t.n - t.only_a - t.only_b], dtype=float) / t.n
        draws = rng.multinomial(t.n, p, size=replicates)
        total += draws[:, 0] - draws[:, 1]
        n += t.n
    low, high = np.percentile(100.0 * total / n, [2.5, 97.5])
    return float(low), float(high)


def paired_test(
    *,
    scope: str,
    tables: Sequence[PairTable],
    scorers: Mapping[str, str],
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> Paired:
    """McNemar's test on the summed 2x2 table of one dataset or several (summing over datasets is
    the Mantel-Haenszel test for matched pairs, which for 1:1 pairs is McNemar's on the pooled
    discordant counts), exact below MCNEMAR_EXACT_BELOW discordant pairs; and the bootstrap interval
    of the difference, stratified by dataset."""
    counts = {
        key: sum(getattr(t, key) for t in tables)
        for key in ("n", "both", "only_a", "only_b", "neither", "only_in_a", "only_in_b")
    }
    base = Paired(scope=scope, datasets=len(tables), **counts)
    try:
        scorers_check(scorers=scorers)
    except ScorerMismatch as exc:
        return Paired(**{**asdict(base), "refused": str(exc)})
    if not base.n:
        return Paired(**{**asdict(base), "refused": "no item was answered by both models"})
    discordant = base.only_a + base.only_b
    exact = discordant < MCNEMAR_EXACT_BELOW
    result = mcnemar([[base.both, base.only_a], [base.only_b, base.neither]], exact=exact, correction=True)
    low, high = _bootstrap_difference(tables, replicates=replicates, seed=seed)
    return Paired(
        **{
            **asdict(base),
            "test": "McNemar exact (binomial)" if exact else "McNemar chi-square, continuity-corrected",
            "statistic": float(result.statistic),
            "p_value": float(result.pvalue),
            "difference": 100.0 * (base.only_a - base.only_b) / base.n,
            "ci_low": low,
            "ci_high": high,
        }
    )


@dataclass
class Comparison:
    """Two models of a suite compared per dataset and pooled over the datasets."""

    a: SuiteModel
    b: SuiteModel
    per_dataset: list[tuple[SuiteDataset, Paired]] = field(default_factory=list)
    pooled: Paired | None = None


def suite_comparison(
    *,
    a: SuiteModel,
    b: SuiteModel,
    datasets: Sequence[SuiteDataset],
    outcomes: Mapping[tuple[int, int], Outcomes],
    scorers: Mapping[tuple[int, int], str],
    replicates: int = BOOTSTRAP_REPLICATES,
) -> Comparison:
    """The paired test per dataset both models finished, and pooled over those datasets; a pooled
    test over datasets with different scorers is refused like a per-dataset one."""
    comparison = Comparison(a=a, b=b)
    tables, pooled_scorers = [], {}
    for d in datasets:
        ka, kb = (d.id, a.index), (d.id, b.index)
        if ka not in outcomes or kb not in outcomes:
            continue
        table = pair_table(outcomes[ka], outcomes[kb])
        run_scorers = {f"{a.spec} on {d.slug}": scorers[ka], f"{b.spec} on {d.slug}": scorers[kb]}
        comparison.per_dataset.append(
            (d, paired_test(scope=d.slug, tables=[table], scorers=run_scorers, replicates=replicates))
        )
        tables.append(table)
        pooled_scorers.update(run_scorers)
    if tables:
        comparison.pooled = paired_test(
            scope="all datasets", tables=tables, scorers=pooled_scorers, replicates=replicates
        )
    return comparison


# ----------------------------------------------------------------------------- exports


def _model_columns(model: SuiteModel) -> dict[str, Any]:
    return {
        "model_index": model.index,
        "model_spec": model.spec,
        "model_name": model.name,
        "family": model.family,
        "training": model.training,
        "parameters": model.parameters,
        "parameters_source": model.parameters_source,
    }


def _dataset_columns(dataset: SuiteDataset) -> dict[str, Any]:
    return {
        "dataset": dataset.slug,
        "behavior": dataset.behavior,
        "collection": dataset.collection_slug,
        "category": dataset.category,
        "direction": dataset.direction or "not stated",
    }


def matrix_records(*, groups: Sequence[Group], models: Sequence[SuiteModel]) -> list[dict[str, Any]]:
    """The dot plot's numbers, one record per (dataset, model) in the plot's order; a model without
    a finished run on a dataset has a record with empty figures."""
    records = []
    for group in groups:
        for row in group.rows:
            for model, cell in zip(models, row.cells, strict=True):
                records.append(
                    {
                        **_dataset_columns(row.dataset),
                        **_model_columns(model),
                        "run_id": cell.run_id if cell else None,
                        "scorer": cell.scorer if cell else "",
                        "n": cell.n if cell else None,
                        "matching": cell.matching if cell else None,
                        "percent_matching": cell.percent if cell else None,
                        "ci_low": cell.ci_low if cell else None,
                        "ci_high": cell.ci_high if cell else None,
                        "mean_p_match": cell.mean_p_match if cell else None,
                        "flag": row.flag,
                    }
                )
    return records


def trend_records(
    *, datasets: Sequence[SuiteDataset], trends: Mapping[int, TrendReport], models: Sequence[SuiteModel]
) -> list[dict[str, Any]]:
    """One record per fitted scope of each dataset (or one saying why there is none)."""
    records = []
    for d in datasets:
        report = trends.get(d.id, TrendReport())
        common = {
            **_dataset_columns(d),
            "left_out": "; ".join(report.left_out),
            "refused": report.refused,
            "dataset_flag": report.flag,
        }
        if not report.fits:
            records.append(
                {**common, "scope": "", "models": "", "not_estimable": report.refused or "no models"}
            )
            continue
        for fit in report.fits:
            records.append(
                {
                    **common,
                    "scope": fit.scope,
                    "models": " | ".join(models[i].spec for i in fit.models),
                    "n_items": fit.n_items,
                    "n_examples": fit.n_examples,
                    "slope_per_decade": fit.slope,
                    "ci_low": fit.ci_low,
                    "ci_high": fit.ci_high,
                    "p_value": fit.p_value,
                    "odds_ratio_per_decade": fit.odds_ratio,
                    "flag": fit.flag,
                    "not_estimable": fit.not_estimable,
                }
            )
    return records


def comparison_records(comparison: Comparison) -> list[dict[str, Any]]:
    """The pooled test first, then one record per dataset."""
    pairs = ([comparison.pooled] if comparison.pooled else []) + [p for _, p in comparison.per_dataset]
    return [
        {"model_a": comparison.a.spec, "model_b": comparison.b.spec, **paired.as_dict()} for paired in pairs
    ]


TREND_TEST = (
    "Logistic regression (statsmodels GLM, binomial family, logit link) of each item's match (0/1) on "
    "log10(parameters), standard errors clustered by example (every model answers the same items); "
    "slope = change in log-odds of matching per tenfold parameters, Wald 95% interval. One fit per "
    "family and training with two sizes or more, else one across families."
)
PAIRED_TEST = (
    f"McNemar's test on the items both models answered (exact binomial below {MCNEMAR_EXACT_BELOW} "
    "discordant pairs, else chi-square with continuity correction; pooled over datasets on the summed "
    "table); difference in % matching (A − B) with a paired bootstrap percentile 95% interval "
    f"({BOOTSTRAP_REPLICATES} resamples of items within each dataset, seed {BOOTSTRAP_SEED})."
)
