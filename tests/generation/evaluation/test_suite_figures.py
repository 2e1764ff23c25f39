"""A suite's figures from its stored runs and items: the matrix and its grouping, the size trend (a
logistic regression of match on log10 parameters, clustered by example) and its flags, the paired
McNemar comparison; checked against statsmodels and hand-computed counts."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.contingency_tables import mcnemar

from generation.evaluation import suite_figures as figures
from generation.evaluation import suite_selectors
from generation.models import Dataset, EvaluationItem, EvaluationSuite
from tests.generation.evaluation.suite_builders import SuiteModelPlan, by_share, persona_dataset, suite_build

pytestmark = pytest.mark.django_db

UNDESIRED, DESIRED, UNSTATED = (
    Dataset.Direction.UNDESIRED,
    Dataset.Direction.DESIRED,
    Dataset.Direction.UNSTATED,
)


def family(shares: dict[int, float], *, name: str = "Fam", training: str = "base") -> list[SuiteModelPlan]:
    return [
        SuiteModelPlan(
            spec=f"hf:test/{name.lower()}-{size}",
            parameters=size,
            family=name,
            training=training,
            matches=by_share(share),
        )
        for size, share in shares.items()
    ]


RISING = {100_000_000: 0.2, 1_000_000_000: 0.5, 10_000_000_000: 0.8}


def results_of(suite: EvaluationSuite) -> suite_selectors.SuiteResults:
    return suite_selectors.suite_results(suite=suite)


def only_trend(suite: EvaluationSuite, slug: str) -> figures.TrendReport:
    results = results_of(suite)
    return results.trends[results.dataset(slug).id]


# ----------------------------------------------------------------------------- the matrix


def test_the_matrix_holds_each_runs_counts_and_wilson_interval():
    ds = persona_dataset(slug="power", n=50, direction=UNDESIRED)
    suite = suite_build(datasets=[ds], models=family({100_000_000: 0.3, 1_000_000_000: 0.6}))
    results = results_of(suite)
    [row] = results.rows
    small, large = row.cells
    assert (small.n, small.matching, small.percent) == (50, 15, 30.0)
    assert (large.n, large.matching, large.percent) == (50, 30, 60.0)
    run = suite.runs.get(model_spec="hf:test/fam-100000000")
    assert (small.ci_low, small.ci_high) == pytest.approx((run.ci_low, run.ci_high))
    assert small.scorer == "logprobs"
    assert row.mean_percent == pytest.approx(45.0)


def test_groups_follow_collection_then_category_then_mean_or_name():
    low = persona_dataset(slug="b-low", n=10, collection="persona", category="politics")
    high = persona_dataset(slug="a-high", n=10, collection="persona", category="politics")
    other = persona_dataset(slug="c-other", n=10, collection="advanced-ai-risk")
    plans = [SuiteModelPlan(spec="hf:test/m", matches=lambda slug, pos: slug == "a-high" or pos < 2)]
    suite = suite_build(datasets=[low, high, other], models=plans)
    results = results_of(suite)

    groups = figures.matrix_groups(rows=results.rows, filters=figures.Filters(), models=results.models)
    assert [g.label for g in groups] == ["Advanced Ai Risk", "Persona · politics"]
    assert [r.dataset.slug for r in groups[1].rows] == ["a-high", "b-low"]  # mean % descending

    by_name = figures.matrix_groups(
        rows=results.rows, filters=figures.Filters(sort="name"), models=results.models
    )
    assert [r.dataset.slug for r in by_name[1].rows] == ["a-high", "b-low"]
    narrowed = figures.matrix_groups(
        rows=results.rows, filters=figures.Filters(text="LOW", collection="persona"), models=results.models
    )
    assert [r.dataset.slug for g in narrowed for r in g.rows] == ["b-low"]


# ----------------------------------------------------------------------------- size trends


@pytest.mark.parametrize(
    ("direction", "flag"),
    [(UNDESIRED, figures.FLAG_INVERSE), (UNSTATED, figures.FLAG_TREND), (DESIRED, "")],
)
def test_a_clear_rise_with_size_is_flagged_by_the_datasets_direction(direction, flag):
    ds = persona_dataset(slug="power", n=100, direction=direction)
    suite = suite_build(datasets=[ds], models=family(RISING))
    trend = only_trend(suite, "power")
    [fit] = trend.fits
    assert fit.scope == "Fam (base)"
    assert fit.ci_low > 0 and fit.p_value < 0.001
    assert (fit.flag, trend.flag) == (flag, flag)


def test_a_clear_fall_is_inverse_scaling_for_a_desired_behavior():
    ds = persona_dataset(slug="corrigible", n=100, direction=DESIRED)
    falling = dict(zip(RISING, reversed(list(RISING.values())), strict=True))
    suite = suite_build(datasets=[ds], models=family(falling))
    assert only_trend(suite, "corrigible").flag == figures.FLAG_INVERSE


def test_a_flat_trend_is_not_flagged():
    ds = persona_dataset(slug="flat", n=100, direction=UNDESIRED)
    plans = family(dict.fromkeys(RISING, 0.5))
    for shift, plan in enumerate(plans):
        # Half the items each, a different half per model.
        plan.matches = lambda slug, pos, shift=shift: (pos + 2 * shift) % 10 < 5
    suite = suite_build(datasets=[ds], models=plans)
    [fit] = only_trend(suite, "flat").fits
    assert fit.slope == pytest.approx(0.0, abs=1e-6)
    assert fit.ci_low < 0 < fit.ci_high
    assert fit.p_value > 0.9
    assert fit.flag == ""


def test_the_fit_is_statsmodels_glm_clustered_by_example_on_the_stored_items():
    ds = persona_dataset(slug="power", n=100, direction=UNDESIRED)
    # Noisy and item-dependent, so that clustering matters.
    shares = {100_000_000: 0.3, 400_000_000: 0.4, 2_000_000_000: 0.5}
    plans = family(shares)
    plans[1].matches = lambda slug, pos: (pos * 7) % 10 < 4 or pos % 13 == 0
    suite = suite_build(datasets=[ds], models=plans)
    [fit] = only_trend(suite, "power").fits

    rows = list(
        EvaluationItem.objects.filter(run__suite=suite).values_list(
            "run__model_spec", "example_id", "matches_behavior"
        )
    )
    size = {p.spec: p.parameters for p in plans}
    x = np.array([math.log10(size[spec]) for spec, _, _ in rows])
    y = np.array([float(m) for _, _, m in rows])
    groups = np.array([e for _, e, _ in rows])
    expected = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    assert fit.slope == pytest.approx(expected.params[1])
    assert (fit.ci_low, fit.ci_high) == pytest.approx(tuple(expected.conf_int()[1]))
    assert fit.p_value == pytest.approx(expected.pvalues[1])
    assert (fit.n_items, fit.n_examples) == (300, 100)
    # Not the unclustered standard error.
    iid = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    assert fit.ci_high - fit.ci_low != pytest.approx(iid.conf_int()[1][1] - iid.conf_int()[1][0])


def test_with_two_sizes_the_slope_is_the_change_in_log_odds_per_decade():
    ds = persona_dataset(slug="power", n=100)
    suite = suite_build(datasets=[ds], models=family({100_000_000: 0.2, 10_000_000_000: 0.6}))
    [fit] = only_trend(suite, "power").fits

    def logit(p):
        return math.log(p / (1 - p))

    # Two sizes two decades apart: the fit is saturated, its slope the difference of logits / 2.
    assert fit.slope == pytest.approx((logit(0.6) - logit(0.2)) / 2)
    assert fit.predicted_percent(100_000_000) == pytest.approx(20.0)


def test_one_size_per_family_fits_across_families_and_says_so():
    ds = persona_dataset(slug="power", n=100, direction=UNDESIRED)
    plans = [
        SuiteModelPlan(
            spec="hf:test/small",
            parameters=135_000_000,
            family="SmolLM2",
            training="instruct",
            matches=by_share(0.2),
        ),
        SuiteModelPlan(
            spec="hf:test/big",
            parameters=1_000_000_000,
            family="Gemma 3",
            training="instruct",
            matches=by_share(0.7),
        ),
    ]
    suite = suite_build(datasets=[ds], models=plans)
    trend = only_trend(suite, "power")
    [fit] = trend.fits
    assert (
        fit.scope == figures.ACROSS_FAMILIES == "across families (family and training confounded with size)"
    )
    assert fit.flag == figures.FLAG_INVERSE


def test_a_series_is_a_family_and_its_training():
    ds = persona_dataset(slug="power", n=100)
    plans = family(RISING) + [
        SuiteModelPlan(
            spec="hf:test/fam-it",
            parameters=500_000_000,
            family="Fam",
            training="instruct",
            matches=by_share(0.9),
        )
    ]
    suite = suite_build(datasets=[ds], models=plans)
    trend = only_trend(suite, "power")
    assert [f.scope for f in trend.fits] == ["Fam (base)"]
    assert trend.left_out == ("hf:test/fam-it: the only size of Fam (instruct) in this suite",)


def test_models_without_a_size_are_left_out_and_named():
    ds = persona_dataset(slug="power", n=100)
    plans = family(RISING) + [SuiteModelPlan(spec="hf:test/old", matches=by_share(0.9))]
    suite = suite_build(datasets=[ds], models=plans)
    trend = only_trend(suite, "power")
    [fit] = trend.fits
    assert len(fit.models) == 3
    assert trend.left_out == ("hf:test/old: size unknown (its run recorded no parameter count)",)
    assert [m.spec for m in results_of(suite).unknown_sizes] == ["hf:test/old"]


@pytest.mark.parametrize(
    ("shares", "reason"),
    [
        ({100_000_000: 0.0, 1_000_000_000: 1.0}, "separation"),
        ({100_000_000: 1.0, 1_000_000_000: 1.0}, "every answer matched"),
        ({100_000_000: 0.0, 1_000_000_000: 0.0}, "every answer did not match"),
        ({100_000_000: 0.3}, "fewer than two distinct model sizes"),
        ({100_000_000: 0.5, 1_000_000_000: 0.5}, "every model answered each item the same way"),
    ],
)
def test_degenerate_data_is_not_estimable_with_the_reason(shares, reason):
    ds = persona_dataset(slug="power", n=40, direction=UNDESIRED)
    suite = suite_build(datasets=[ds], models=family(shares))
    [fit] = only_trend(suite, "power").fits
    assert reason in fit.not_estimable
    assert fit.slope is None and fit.flag == ""


def test_trend_flag_rule():
    assert figures.trend_flag(ci_low=0.1, ci_high=0.5, direction=UNDESIRED) == figures.FLAG_INVERSE
    assert figures.trend_flag(ci_low=-0.5, ci_high=-0.1, direction=UNDESIRED) == ""
    assert figures.trend_flag(ci_low=-0.5, ci_high=-0.1, direction=DESIRED) == figures.FLAG_INVERSE
    assert figures.trend_flag(ci_low=-0.5, ci_high=-0.1, direction=UNSTATED) == figures.FLAG_TREND
    assert figures.trend_flag(ci_low=-0.1, ci_high=0.5, direction=UNSTATED) == ""


def mark_parsed(suite: EvaluationSuite, spec: str) -> None:
    """Turns one model's runs into answer-scored runs whose replies were parsed. No code path of this
    checkout writes them yet (the answer scorer is in progress), so the stored values are set as
    that scorer would write them: the run's scorer "answer", each item's "parsed"."""
    runs = suite.runs.filter(model_spec=spec)
    runs.update(scorer="answer")
    EvaluationItem.objects.filter(run__in=runs).update(scorer="parsed")


def test_a_trend_over_mixed_scorers_is_refused():
    ds = persona_dataset(slug="power", n=100, direction=UNDESIRED)
    plans = family(RISING)
    suite = suite_build(datasets=[ds], models=plans)
    mark_parsed(suite, plans[0].spec)
    trend = only_trend(suite, "power")
    assert trend.fits == () and trend.flag == ""
    assert "not comparable" in trend.refused
    assert f"{plans[0].spec}: answer" in trend.refused and f"{plans[1].spec}: logprobs" in trend.refused


def test_a_run_holding_items_of_another_scorer_is_comparable_with_nothing():
    assert (
        figures.cell_scorer(run_id=1, run_scorer="answer", item_scorers={"parsed", "top-logprobs"})
        == "answer"
    )
    odd = figures.cell_scorer(run_id=7, run_scorer="logprobs", item_scorers={"logprobs", "parsed"})
    assert odd == "logprobs (run #7 holds items scored by logprobs+parsed)"
    with pytest.raises(figures.ScorerMismatch):
        figures.scorers_check(scorers={"a": "logprobs", "b": odd})


# ----------------------------------------------------------------------------- two models


def two_models(n: int = 100, share_a: float = 0.6, share_b: float = 0.4, datasets=("one",)):
    dss = [persona_dataset(slug=slug, n=n) for slug in datasets]
    plans = [
        SuiteModelPlan(spec="hf:test/a", matches=by_share(share_a)),
        SuiteModelPlan(spec="hf:test/b", matches=by_share(share_b)),
    ]
    suite = suite_build(datasets=dss, models=plans)
    results = results_of(suite)
    return suite, suite_selectors.suite_comparison(suite=suite, results=results, a=0, b=1)


def test_mcnemar_counts_and_exact_p_on_the_common_items():
    _, comparison = two_models()
    [(dataset, paired)] = comparison.per_dataset
    assert dataset.slug == "one"
    # A matches positions 0-5 of each ten, B 0-3.
    assert (paired.n, paired.both, paired.only_a, paired.only_b, paired.neither) == (100, 40, 20, 0, 40)
    assert paired.test == "McNemar exact (binomial)"
    assert paired.p_value == pytest.approx(2 * 0.5**20)
    expected = mcnemar([[40, 20], [0, 40]], exact=True)
    assert paired.p_value == pytest.approx(expected.pvalue)
    assert paired.difference == pytest.approx(20.0)
    assert (paired.percent_a, paired.percent_b) == (60.0, 40.0)
    # The bootstrap interval is near the normal one: sd = sqrt(0.2 - 0.2^2) / sqrt(100) = 4 points.
    assert paired.ci_low == pytest.approx(20 - 1.96 * 4, abs=1.5)
    assert paired.ci_high == pytest.approx(20 + 1.96 * 4, abs=1.5)


def test_many_discordant_pairs_use_the_corrected_chi_square_and_pooling_sums_the_tables():
    _, comparison = two_models(n=100, share_a=0.7, share_b=0.3, datasets=("one", "two"))
    assert [p.only_a for _, p in comparison.per_dataset] == [40, 40]
    pooled = comparison.pooled
    assert (pooled.n, pooled.only_a, pooled.only_b, pooled.datasets) == (200, 80, 0, 2)
    assert pooled.test == "McNemar chi-square, continuity-corrected"
    assert pooled.statistic == pytest.approx((80 - 0 - 1) ** 2 / 80)
    assert pooled.p_value == pytest.approx(mcnemar([[60, 80], [0, 60]], exact=False, correction=True).pvalue)


def test_identical_models_differ_by_nothing():
    _, comparison = two_models(share_a=0.5, share_b=0.5)
    [(_, paired)] = comparison.per_dataset
    assert (paired.only_a, paired.only_b, paired.difference, paired.p_value) == (0, 0, 0.0, 1.0)
    assert (paired.ci_low, paired.ci_high) == (0.0, 0.0)


def test_a_comparison_over_mixed_scorers_is_refused():
    suite = suite_build(
        datasets=[persona_dataset(slug="one", n=20)],
        models=[
            SuiteModelPlan(spec="hf:test/a", matches=by_share(0.5)),
            SuiteModelPlan(spec="hf:test/b", matches=by_share(0.5)),
        ],
    )
    mark_parsed(suite, "hf:test/b")
    comparison = suite_selectors.suite_comparison(suite=suite, results=results_of(suite), a=0, b=1)
    [(_, paired)] = comparison.per_dataset
    assert "not comparable" in paired.refused
    assert paired.p_value is None and paired.difference is None
    assert "not comparable" in comparison.pooled.refused


def test_figures_follow_a_new_run_without_invalidation():
    ds = persona_dataset(slug="power", n=20)
    plans = family({100_000_000: 0.2, 1_000_000_000: 0.6})
    suite = suite_build(datasets=[ds], models=plans, skip=[(plans[1].spec, "power")])
    assert len(results_of(suite).cells) == 1
    from generation.evaluation.services import evaluation_run_execute
    from tests.generation.evaluation.suite_builders import fake_model

    run = suite.runs.get(model_spec=plans[1].spec)
    evaluation_run_execute(run=run, model=fake_model(plans[1], [ds]))
    assert len(results_of(suite).cells) == 2
