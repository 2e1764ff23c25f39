"""Every figure of analysis.agreement.figures against an independent computation on hand-built tables:
statsmodels, krippendorff, scipy, scikit-learn, crowd-kit and plain numpy/Python, including each
undefined case, and the vectorised bootstrap against explicit resamples."""

import itertools
import json
import statistics

import krippendorff
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from analysis.agreement import figures as agreement
from analysis.agreement.figures import Figure, group_figures, rating_table

# ----------------------------------------------------------------------------- helpers


def long_form(
    matrix_label,
    matrix_amb=None,
    matrix_rel=None,
    *,
    confidence=None,
    workers=None,
    labels=None,
    answers=None,
):
    """Ratings in long form from (n, k) matrices; worker j of example i is `workers[i][j]`
    (default: worker j). Each rating's answer is its example's label (`labels[i]`, default " Yes")
    where it agrees with the label, else the other Yes/No option; or `answers`, an (n, k) matrix of
    answer texts ("" = not recorded)."""
    label = np.asarray(matrix_label, dtype=bool)
    n, k = label.shape
    amb = np.zeros_like(label) if matrix_amb is None else np.asarray(matrix_amb, dtype=bool)
    rel = np.full((n, k), 4) if matrix_rel is None else np.asarray(matrix_rel)
    workers = np.tile(np.arange(k), (n, 1)) if workers is None else np.asarray(workers)
    if answers is None:
        labels = np.array([" Yes"] * n if labels is None else labels, dtype=object)
        other = np.where(labels == " Yes", " No", " Yes")
        answers = np.where(label, labels[:, None], other[:, None])
    return {
        "k": k,
        "example_ids": np.arange(n) + 100,
        "label_confidence": np.linspace(0.55, 0.95, n) if confidence is None else confidence,
        "rating_example": np.repeat(np.arange(n) + 100, k),
        "rating_worker": workers.ravel(),
        "relevance": rel.ravel(),
        "label_correct": label.ravel(),
        "ambiguous": amb.ravel(),
        "answers": np.asarray(answers, dtype=object).reshape(n * k),
        "answer_options": [" Yes", " No"],
    }


def random_matrices(seed, n=40, k=3, *, p_label=0.8, p_amb=0.15):
    rng = np.random.default_rng(seed)
    label = rng.random((n, k)) < p_label
    amb = rng.random((n, k)) < p_amb
    rel = rng.choice([1, 2, 3, 4, 5], size=(n, k), p=[0.05, 0.1, 0.15, 0.3, 0.4])
    workers = np.stack([rng.choice(12, k, replace=False) for _ in range(n)])
    # Ties in the confidence, as in released files where many scores repeat.
    confidence = np.round(rng.uniform(0.5, 1.0, n), 1)
    return label, amb, rel, workers, confidence


def random_table(seed, **kwargs):
    label, amb, rel, workers, confidence = random_matrices(seed, **kwargs)
    return rating_table(**long_form(label, amb, rel, confidence=confidence, workers=workers))


def statsmodels_table(matrix):
    """statsmodels' own aggregation of a (subjects x raters) matrix into category counts."""
    counts, _ = aggregate_raters(np.asarray(matrix, dtype=int), n_cat=2)
    return counts


def pairwise_agreement(matrix):
    """Mean over examples of the share of worker pairs that agree, by enumerating the pairs."""
    shares = []
    for row in np.asarray(matrix):
        pairs = list(itertools.combinations(row, 2))
        shares.append(sum(a == b for a, b in pairs) / len(pairs))
    return float(np.mean(shares))


def assert_close(figure: Figure, expected: float):
    assert figure.undefined == ""
    assert figure.value == pytest.approx(expected, abs=1e-12)


def flat_numbers(document) -> list[float]:
    if isinstance(document, dict):
        return [x for key in sorted(document) for x in flat_numbers(document[key])]
    if isinstance(document, list):
        return [x for item in document for x in flat_numbers(item)]
    return [document] if isinstance(document, float) else []


def assert_json_clean(figures):
    json.dumps(figures.as_dict(), allow_nan=False)


# ----------------------------------------------------------------------------- the table


def test_rating_table_orders_ratings_and_counts_excluded_examples_by_reason():
    data = {
        "k": 3,
        "example_ids": [10, 11, 12, 13, 14],
        "label_confidence": [0.9, None, 0.7, 0.6, 0.8],
        # 10: complete (given out of order); 11: two ratings; 12: none; 13: complete but one rating
        # is by a left-out worker; 14: complete.
        "rating_example": [10, 14, 10, 11, 11, 13, 13, 13, 14, 14, 10],
        "rating_worker": [7, 1, 3, 1, 2, 4, 5, 6, 2, 3, 5],
        "relevance": [5, 4, 3, 2, 2, 1, 1, 1, 4, 4, 4],
        "label_correct": [True, True, False, True, True, True, True, True, True, False, True],
        "ambiguous": [False] * 11,
        # As the examples spell them, with the leading space, or without; "" = not recorded.
        "answers": [" (A)", "(B)", " (C)", "(A)", "(A)", "(A)", "(A)", "(A)", " (A)", "", "(B)"],
        "answer_options": [" (B)", " (A)", " (C)"],
        "left_out": [False] * 6 + [True] + [False] * 4,
    }
    table = rating_table(**data)
    assert table.example_ids.tolist() == [10, 14]
    assert table.workers.tolist() == [[3, 5, 7], [1, 2, 3]]
    assert table.relevance.tolist() == [[3, 4, 5], [4, 4, 4]]
    assert table.label_correct.tolist() == [[False, True, True], [True, True, False]]
    # Categories in the options' order, whitespace stripped; -1 where no answer was recorded.
    assert table.answer_options == ("(B)", "(A)", "(C)")
    assert table.answers.tolist() == [[2, 0, 1], [0, 1, -1]]
    assert table.answered.tolist() == [True, False]
    assert table.answer_excluded == {agreement.NO_ANSWER: 1}
    assert table.label_confidence.tolist() == [0.9, 0.8]
    assert table.excluded == {
        "fewer than 3 ratings so far": 1,
        "not rated yet": 1,
        "fewer than 3 ratings once left-out workers are removed": 1,
    }
    assert table.excluded_count == 3 and table.ratings == 6 and table.worker_count == 5


def test_rating_table_counts_examples_with_more_than_k_ratings():
    table = rating_table(
        **long_form([[True, True, True], [True, False, True]], workers=[[1, 2, 3], [1, 2, 3]])
    )
    assert table.n == 2
    data = long_form([[True, True, True, True], [True, False, True, False]])
    data["k"] = 3
    assert rating_table(**data).excluded == {"more than 3 ratings": 2}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"relevance": [0, 4, 4]}, "relevance"),
        ({"rating_example": [100, 100, 999]}, "not in the table"),
        ({"k": 0}, "k must be"),
        ({"rating_worker": [1, 2]}, "every rating"),
        ({"example_ids": [100, 100]}, "one label confidence"),
    ],
)
def test_rating_table_rejects_malformed_input(change, message):
    data = long_form([[True, True, False]])
    data.update(change)
    with pytest.raises(ValueError, match=message):
        rating_table(**data)


def test_concat_pools_tables_and_their_exclusions():
    first = random_table(1, n=5)
    data = long_form([[True, True, True]])
    data["example_ids"] = [1, 2]
    data["label_confidence"] = [0.5, 0.6]
    data["rating_example"] = [1, 1, 1]
    second = rating_table(**data)
    pooled = agreement.table_concat([first, second], k=3)
    assert pooled.n == 6 and pooled.excluded == {"not rated yet": 1}
    assert pooled.label_correct[:5].tolist() == first.label_correct.tolist()
    assert agreement.table_concat([], k=3).n == 0
    with pytest.raises(ValueError):
        agreement.table_concat([first, random_table(2, n=3, k=2)], k=3)


# ----------------------------------------------------------------------------- the point estimates


def test_hand_computed_fleiss_kappa():
    # yes counts 3, 3, 0, 2: P-bar = (1 + 1 + 1 + 1/3) / 4 = 5/6, p(yes) = 8/12, chance = 5/9,
    # kappa = (5/6 - 5/9) / (4/9) = 5/8; Randolph = (5/6 - 1/2) / (1/2) = 2/3.
    label = [[1, 1, 1], [1, 1, 1], [0, 0, 0], [1, 1, 0]]
    figures = group_figures(rating_table(**long_form(label)), replicates=50)
    assert_close(figures.label.fleiss_kappa, 5 / 8)
    assert_close(figures.label.randolph_kappa, 2 / 3)
    assert_close(figures.label.raw_agreement, 5 / 6)
    assert_close(figures.label.unanimous, 3 / 4)
    assert_close(figures.majority_agrees, 3 / 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_figure_matches_an_independent_computation(seed, k):
    label, amb, rel, workers, confidence = random_matrices(seed, n=30, k=k)
    figures = group_figures(
        rating_table(**long_form(label, amb, rel, confidence=confidence, workers=workers)), replicates=100
    )
    assert figures.examples == 30 and figures.ratings == 30 * k and figures.excluded == {}

    for name, matrix, section in (("label", label, figures.label), ("ambiguity", amb, figures.ambiguity)):
        counts = statsmodels_table(matrix)
        assert_close(section.fleiss_kappa, fleiss_kappa(counts))
        assert_close(section.randolph_kappa, fleiss_kappa(counts, method="randolph"))
        assert_close(section.raw_agreement, pairwise_agreement(matrix))
        assert_close(section.unanimous, np.mean([len(set(row)) == 1 for row in matrix.tolist()]))
        # Krippendorff from the raw reliability data (coders as rows), not from counts.
        expected = krippendorff.alpha(reliability_data=matrix.T.astype(float), level_of_measurement="nominal")
        assert_close(section.krippendorff_alpha, expected), name

    majority = [sum(row) * 2 > k for row in label.tolist()]
    assert_close(figures.majority_agrees, sum(majority) / len(majority))
    per_example = [sum(row) for row in amb.tolist()]
    for yes, (key, figure) in enumerate(figures.ambiguity_distribution):
        assert key == f"{yes}/{k}"
        assert_close(figure, per_example.count(yes) / len(per_example))

    ratings = rel.ravel().tolist()
    assert_close(figures.relevance_mean, statistics.mean(ratings))
    assert_close(figures.relevance_sd, statistics.stdev(ratings))
    for level, figure in figures.relevance_distribution:
        assert_close(figure, ratings.count(level) / len(ratings))
    expected = krippendorff.alpha(
        reliability_data=rel.T.astype(float), value_domain=[1, 2, 3, 4, 5], level_of_measurement="ordinal"
    )
    assert_close(figures.relevance_alpha, expected)

    share = label.sum(axis=1) / k
    assert figures.discriminator_examples == 30
    assert_close(figures.spearman, spearmanr(confidence, share).statistic)
    assert_close(figures.auc, roc_auc_score(majority, confidence))
    assert_json_clean(figures)


def test_examples_without_label_confidence_are_left_out_of_the_discriminator_figures():
    label, amb, rel, workers, confidence = random_matrices(4, n=20)
    confidence = confidence.astype(float)
    confidence[:5] = np.nan
    figures = group_figures(rating_table(**long_form(label, amb, rel, confidence=confidence)), replicates=50)
    assert figures.discriminator_examples == 15
    share = label.sum(axis=1)[5:] / 3
    assert_close(figures.spearman, spearmanr(confidence[5:], share).statistic)
    assert_close(figures.auc, roc_auc_score(share > 0.5, confidence[5:]))


# ----------------------------------------------------------------------------- the bootstrap


def explicit_resamples(n, replicates, seed):
    """The resamples bootstrap_weights draws (one chunk), as explicit index arrays."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("ties", [True, False])
def test_weighted_statistics_equal_the_libraries_on_explicit_resamples(seed, ties):
    label, _, rel, _, confidence = random_matrices(seed, n=25, k=3)
    if not ties:
        confidence = np.random.default_rng(seed).uniform(0.5, 1.0, 25)
    yes = label.sum(axis=1)
    counts = np.stack([3 - yes, yes], axis=1).astype(float)
    rel_counts = np.stack([(rel == v).sum(axis=1) for v in range(1, 6)], axis=1).astype(float)
    share = yes / 3
    majority = 2 * yes > 3
    indices = explicit_resamples(25, 30, seed)
    weights = np.stack([np.bincount(row, minlength=25) for row in indices]).astype(float)

    fleiss, randolph, observed = agreement.weighted_fleiss(counts, weights, k=3)
    nominal = agreement.weighted_krippendorff(
        agreement._pair_products(counts), weights, k=3, c=2, ordinal=False
    )
    ordinal = agreement.weighted_krippendorff(
        agreement._pair_products(rel_counts), weights, k=3, c=5, ordinal=True
    )
    rho = agreement.weighted_spearman(confidence, share, weights)
    auc = agreement.weighted_auc(confidence, majority, weights)
    for r, idx in enumerate(indices):
        assert fleiss[r] == pytest.approx(fleiss_kappa(counts[idx]))
        assert randolph[r] == pytest.approx(fleiss_kappa(counts[idx], method="randolph"))
        assert observed[r] == pytest.approx(pairwise_agreement(label[idx]))
        assert nominal[r] == pytest.approx(
            krippendorff.alpha(reliability_data=label[idx].T.astype(float), level_of_measurement="nominal")
        )
        assert ordinal[r] == pytest.approx(
            krippendorff.alpha(
                reliability_data=rel[idx].T.astype(float),
                value_domain=[1, 2, 3, 4, 5],
                level_of_measurement="ordinal",
            )
        )
        assert rho[r] == pytest.approx(spearmanr(confidence[idx], share[idx]).statistic)
        if majority[idx].all() or not majority[idx].any():
            assert np.isnan(auc[r])
        else:
            assert auc[r] == pytest.approx(roc_auc_score(majority[idx], confidence[idx]))


def test_confidence_intervals_are_the_percentiles_of_explicit_resamples():
    label, amb, rel, workers, confidence = random_matrices(5, n=40)
    table = rating_table(**long_form(label, amb, rel, confidence=confidence, workers=workers))
    figures = group_figures(table, replicates=200, seed=11)
    indices = explicit_resamples(40, 200, 11)
    yes = label.sum(axis=1)
    share = yes / 3
    expected = {
        "fleiss": [fleiss_kappa(statsmodels_table(label[idx])) for idx in indices],
        "sd": [np.std(rel[idx].ravel(), ddof=1) for idx in indices],
        "majority": [np.mean(2 * yes[idx] > 3) for idx in indices],
        "ambiguous_none": [np.mean(amb[idx].sum(axis=1) == 0) for idx in indices],
        "alpha": [
            krippendorff.alpha(
                reliability_data=rel[idx].T.astype(float),
                value_domain=[1, 2, 3, 4, 5],
                level_of_measurement="ordinal",
            )
            for idx in indices
        ],
        "spearman": [spearmanr(confidence[idx], share[idx]).statistic for idx in indices],
    }
    got = {
        "fleiss": figures.label.fleiss_kappa,
        "sd": figures.relevance_sd,
        "majority": figures.majority_agrees,
        "ambiguous_none": figures.ambiguity_share(0),
        "alpha": figures.relevance_alpha,
        "spearman": figures.spearman,
    }
    for name, values in expected.items():
        low, high = np.nanpercentile(values, [2.5, 97.5])
        assert (got[name].ci_low, got[name].ci_high) == (pytest.approx(low), pytest.approx(high)), name
        assert got[name].ci_low <= got[name].value <= got[name].ci_high


def test_bootstrap_is_reproducible_and_independent_of_the_chunk_size(monkeypatch):
    table = random_table(6, n=50)
    first = group_figures(table, replicates=120, seed=3)
    assert group_figures(table, replicates=120, seed=3) == first
    assert group_figures(table, replicates=120, seed=4).label.fleiss_kappa != first.label.fleiss_kappa
    monkeypatch.setattr(agreement, "CHUNK_CELLS", 50 * 7)  # 7 replicates per chunk
    chunked = flat_numbers(group_figures(table, replicates=120, seed=3).as_dict())
    # Equal up to the summation order of the matrix products.
    assert chunked == pytest.approx(flat_numbers(first.as_dict()), abs=1e-12)


def test_bootstrap_weights_resample_with_replacement():
    chunks = list(agreement.bootstrap_weights(10, replicates=25, seed=0, chunk=10))
    assert [c.shape for c in chunks] == [(10, 10), (10, 10), (5, 10)]
    assert all((c.sum(axis=1) == 10).all() for c in chunks)


# ----------------------------------------------------------------------------- undefined cases


def test_all_raters_agree_kappa_and_alpha_are_undefined_not_nan():
    label = [[1, 1, 1]] * 6
    # The libraries themselves give NaN (0/0) here; the site must say why instead.
    assert np.isnan(fleiss_kappa(statsmodels_table(label)))
    figures = group_figures(rating_table(**long_form(label, matrix_rel=[[5, 5, 5]] * 6)), replicates=50)
    assert figures.label.fleiss_kappa.value is None
    assert "chance agreement is 1" in figures.label.fleiss_kappa.undefined
    assert "label correct" in figures.label.fleiss_kappa.undefined
    assert figures.label.krippendorff_alpha.value is None
    assert "expected disagreement is 0" in figures.label.krippendorff_alpha.undefined
    assert (
        figures.ambiguity.fleiss_kappa.value is None
        and "not ambiguous" in figures.ambiguity.fleiss_kappa.undefined
    )
    # Randolph's chance term is fixed at 1/2: still defined, and perfect.
    assert_close(figures.label.randolph_kappa, 1.0)
    assert_close(figures.label.raw_agreement, 1.0)
    assert (
        figures.relevance_alpha.value is None
        and "every relevance rating is 5" in figures.relevance_alpha.undefined
    )
    assert_close(figures.relevance_sd, 0.0)
    assert figures.auc.value is None and "both kinds" in figures.auc.undefined
    assert figures.spearman.value is None and "same share of workers (3/3)" in figures.spearman.undefined
    assert_json_clean(figures)


def test_fewer_than_k_ratings_are_excluded_and_counted():
    data = long_form([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    data["example_ids"] = np.append(data["example_ids"], [200, 201])
    data["label_confidence"] = np.append(data["label_confidence"], [0.6, 0.7])
    # Example 200 got two of its three ratings; 201 none.
    data["rating_example"] = np.append(data["rating_example"], [200, 200])
    data["rating_worker"] = np.append(data["rating_worker"], [0, 1])
    data["relevance"] = np.append(data["relevance"], [1, 1])
    data["label_correct"] = np.append(data["label_correct"], [False, False])
    data["ambiguous"] = np.append(data["ambiguous"], [True, True])
    data["answers"] = np.append(data["answers"], [" No", " No"])
    figures = group_figures(rating_table(**data), replicates=50)
    assert figures.examples == 3
    assert figures.excluded == {"fewer than 3 ratings so far": 1, "not rated yet": 1}
    # The figures use only the three complete examples.
    assert_close(
        figures.label.fleiss_kappa, fleiss_kappa(statsmodels_table([[1, 1, 0], [1, 0, 0], [1, 1, 1]]))
    )
    assert_close(figures.relevance_mean, 4.0)


def test_no_ratings_yet_every_figure_is_undefined():
    data = long_form(np.zeros((0, 3)))
    data["example_ids"] = [1, 2]
    data["label_confidence"] = [0.5, 0.9]
    figures = group_figures(rating_table(**data))
    assert figures.examples == 0 and figures.excluded == {"not rated yet": 2}
    every = [
        figures.label.fleiss_kappa,
        figures.label.randolph_kappa,
        figures.label.raw_agreement,
        figures.label.unanimous,
        figures.label.krippendorff_alpha,
        figures.majority_agrees,
        figures.ambiguity.fleiss_kappa,
        figures.relevance_mean,
        figures.relevance_sd,
        figures.relevance_alpha,
        figures.spearman,
        figures.auc,
        *[f for _, f in figures.ambiguity_distribution],
        *[f for _, f in figures.relevance_distribution],
    ]
    assert all(f.value is None and f.undefined == "no example has 3 ratings yet" for f in every)
    assert_json_clean(figures)
    assert agreement.dawid_skene(rating_table(**data)).undefined == "no example has 3 ratings yet"


def test_one_example_chance_corrected_figures_are_undefined_shares_have_no_interval():
    figures = group_figures(rating_table(**long_form([[1, 1, 0]], matrix_rel=[[3, 4, 5]])))
    assert figures.label.fleiss_kappa.value is None
    assert "only one example" in figures.label.fleiss_kappa.undefined
    assert figures.label.randolph_kappa.value is None and figures.relevance_alpha.value is None
    # Descriptive shares are defined on one example, without an interval.
    assert_close(figures.label.raw_agreement, 1 / 3)
    assert figures.label.raw_agreement.ci_undefined == agreement.NO_SPREAD
    assert_close(figures.majority_agrees, 1.0)
    assert figures.majority_agrees.ci_low is None
    assert figures.majority_agrees.ci_undefined == agreement.NO_SPREAD
    assert_close(figures.relevance_mean, 4.0)
    assert_close(figures.relevance_sd, 1.0)
    assert "only one example has a label confidence" in figures.spearman.undefined
    assert_json_clean(figures)
    assert "only one example" in agreement.dawid_skene(rating_table(**long_form([[1, 1, 0]]))).undefined


def test_one_rater_per_example():
    figures = group_figures(
        rating_table(**long_form([[1], [0], [1]], matrix_rel=[[2], [3], [5]])), replicates=50
    )
    assert "k = 1" in figures.label.fleiss_kappa.undefined
    assert "k = 1" in figures.label.raw_agreement.undefined
    assert "k = 1" in figures.relevance_alpha.undefined
    assert_close(figures.label.unanimous, 1.0)
    assert_close(figures.majority_agrees, 2 / 3)
    assert_json_clean(figures)


def test_discriminator_figures_undefined_cases():
    label = [[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]]
    no_confidence = group_figures(
        rating_table(**long_form(label, confidence=[None, None, None, None])), replicates=20
    )
    assert "no example has a label confidence" in no_confidence.spearman.undefined
    assert no_confidence.discriminator_examples == 0
    same = group_figures(rating_table(**long_form(label, confidence=np.full(4, 0.8))), replicates=20)
    assert "same label confidence" in same.spearman.undefined
    assert_close(same.auc, 0.5)  # a constant score ranks nothing: AUC is one half
    one_side = group_figures(rating_table(**long_form([[1, 1, 0], [1, 1, 1], [0, 1, 1]])), replicates=20)
    assert "a majority agrees with the label" in one_side.auc.undefined
    assert_close(one_side.spearman, spearmanr(np.linspace(0.55, 0.95, 3), [2 / 3, 1, 2 / 3]).statistic)


def test_interval_uses_the_defined_resamples_and_is_missing_when_most_are_undefined():
    # One example in 30 disagrees with the rest: the resamples that miss it (about a third) have no
    # kappa; the interval comes from the others.
    label = [[1, 1, 1]] * 29 + [[0, 0, 0]]
    fleiss = group_figures(rating_table(**long_form(label)), replicates=200).label.fleiss_kappa
    assert fleiss.value == pytest.approx(1.0)
    assert (fleiss.ci_low, fleiss.ci_high) == (pytest.approx(1.0), pytest.approx(1.0))
    replicates = np.array([np.nan] * 60 + list(np.linspace(0, 1, 40)))
    assert agreement._interval(replicates) is None
    some = np.array([np.nan] * 20 + list(np.linspace(0, 1, 80)))
    boot = agreement._Bootstrap({"mostly undefined": replicates, "some undefined": some})
    figure = agreement._figure(0.5, boot, "mostly undefined", n=30)
    assert figure.value == 0.5 and figure.ci_low is None
    assert figure.ci_undefined == "the figure is undefined on most bootstrap resamples"
    low = agreement._figure(0.5, boot, "some undefined", n=30).ci_low
    assert low == pytest.approx(np.percentile(some[20:], 2.5))


# ----------------------------------------------------------------------------- details


def test_calibration_bins_match_a_plain_binning():
    label, amb, rel, workers, confidence = random_matrices(7, n=60)
    confidence = np.random.default_rng(7).uniform(0.3, 1.0, 60)
    confidence[0] = 1.0
    table = rating_table(**long_form(label, amb, rel, confidence=confidence, workers=workers))
    bins = agreement.calibration_bins(table)
    frame = pd.DataFrame({"c": confidence, "share": label.sum(axis=1) / 3, "maj": label.sum(axis=1) >= 2})
    frame["bin"] = pd.cut(frame["c"], bins=np.linspace(0, 1, 11), right=False, include_lowest=True)
    frame.loc[frame["c"] == 1.0, "bin"] = frame["bin"].cat.categories[-1]
    grouped = frame.groupby("bin", observed=True).agg(
        n=("c", "size"), c=("c", "mean"), share=("share", "mean"), maj=("maj", "mean")
    )
    assert [b.examples for b in bins] == grouped["n"].tolist()
    assert [b.mean_confidence for b in bins] == pytest.approx(grouped["c"].tolist())
    assert [b.mean_agreement for b in bins] == pytest.approx(grouped["share"].tolist())
    assert [b.majority_agrees for b in bins] == pytest.approx(grouped["maj"].tolist())
    assert sum(b.examples for b in bins) == 60


def test_majority_vote_marks_ties_for_even_k():
    table = rating_table(**long_form([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1]]))
    assert agreement.majority_vote(table).tolist() == [-1, 1, 0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # crowd-kit on pandas 3
def test_dawid_skene_beside_majority_vote_finds_the_unreliable_worker():
    from crowdkit.aggregation import DawidSkene

    rng = np.random.default_rng(8)
    n = 80
    truth = rng.random(n) < 0.7
    workers = np.stack([rng.choice(6, 3, replace=False) for _ in range(n)])
    # Worker 5 answers the opposite of the truth; the others are right 90% of the time.
    answers = np.where(
        workers == 5, ~truth[:, None], np.where(rng.random((n, 3)) < 0.9, truth[:, None], ~truth[:, None])
    )
    table = rating_table(**long_form(answers, workers=workers))
    result = agreement.dawid_skene(table)
    assert result.undefined == "" and result.examples == n

    frame = pd.DataFrame(
        {
            "task": np.repeat(np.arange(n), 3),
            "worker": table.workers.ravel(),
            "label": table.label_correct.ravel().astype(int),
        }
    )
    model = DawidSkene(n_iter=100)
    model.fit(frame)
    assert result.p_correct == pytest.approx(model.probas_[1].sort_index().to_numpy())

    yes = table.label_correct.sum(axis=1)
    assert result.majority.tolist() == [1 if y >= 2 else 0 for y in yes]
    assert result.majority_correct_share == pytest.approx(np.mean(yes >= 2))
    ds_label = result.p_correct > 0.5
    assert result.ds_correct_share == pytest.approx(ds_label.mean())
    assert result.disagreements == int((ds_label != (yes >= 2)).sum())
    # Dawid-Skene recovers the truth at least as well as the majority vote.
    assert (ds_label == truth).mean() >= ((yes >= 2) == truth).mean()
    reliability = {w.worker_id: w for w in result.workers}
    assert set(reliability) == set(range(6))
    assert reliability[5].ds_accuracy < 0.2 < 0.8 < min(reliability[w].ds_accuracy for w in range(5))
    assert reliability[5].ratings == int((workers == 5).sum())
    worker5 = workers == 5
    expected_agreement = np.mean(answers[worker5] == np.repeat(yes >= 2, 3).reshape(n, 3)[worker5])
    assert reliability[5].agrees_with_majority == pytest.approx(expected_agreement)
    json.dumps(result.as_dict(worker_names={5: "bad"}), allow_nan=False)
    assert result.as_dict(worker_names={5: "bad"})["workers"][5]["worker"] == "bad"


def test_dawid_skene_undefined_when_every_answer_is_the_same():
    result = agreement.dawid_skene(rating_table(**long_form([[0, 0, 0]] * 4)))
    assert result.undefined == "every rating is “label incorrect”: there is no disagreement to model"
    assert result.workers == []


def test_table_rows_do_not_depend_on_the_order_ratings_arrive_in():
    label, amb, rel, workers, confidence = random_matrices(9, n=12)
    data = long_form(label, amb, rel, confidence=confidence, workers=workers)
    shuffled = dict(data)
    order = np.random.default_rng(0).permutation(len(data["rating_example"]))
    for key in ("rating_example", "rating_worker", "relevance", "label_correct", "ambiguous", "answers"):
        shuffled[key] = np.asarray(data[key])[order]
    examples = np.random.default_rng(1).permutation(12)
    shuffled["example_ids"] = np.asarray(data["example_ids"])[examples]
    shuffled["label_confidence"] = np.asarray(data["label_confidence"])[examples]
    first, second = rating_table(**data), rating_table(**shuffled)
    assert first.example_ids.tolist() == sorted(first.example_ids.tolist())
    for name in (
        "example_ids",
        "label_confidence",
        "workers",
        "relevance",
        "label_correct",
        "ambiguous",
        "answers",
    ):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert group_figures(first, replicates=100) == group_figures(second, replicates=100)


# ----------------------------------------------------------------------------- kappa on chosen answers


def answer_matrices(seed, n=40, k=3, *, options=(" (A)", " (B)", " (C)"), p_agree=0.8):
    """Each example's label is a random option; each worker chooses it with probability p_agree,
    else another option at random."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(options, n)
    agrees = rng.random((n, k)) < p_agree
    others = np.array(
        [[rng.choice([o for o in options if o != label]) for _ in range(k)] for label in labels]
    )
    answers = np.where(agrees, labels[:, None], others)
    return answers, agrees, labels


def statsmodels_answer_kappa(answers):
    """statsmodels on the answer counts, built here from the answer texts (its own aggregation)."""
    counts, _ = aggregate_raters(np.asarray(answers, dtype=object).astype(str))
    return fleiss_kappa(counts, method="fleiss")


def answer_table(answers, agrees, *, options=(" (A)", " (B)", " (C)"), **kwargs):
    data = long_form(agrees, answers=answers, **kwargs)
    data["answer_options"] = list(options)
    return rating_table(**data)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kappa_on_chosen_answers_equals_statsmodels_on_the_answer_counts(seed, k):
    answers, agrees, _ = answer_matrices(seed, n=30, k=k)
    figures = group_figures(answer_table(answers, agrees), replicates=100)
    section = figures.answers
    assert section.examples == 30 and section.excluded == {} and section.options == ("(A)", "(B)", "(C)")
    assert_close(section.fleiss_kappa, statsmodels_answer_kappa(answers))
    assert_close(section.raw_agreement, pairwise_agreement(answers))
    assert_close(section.unanimous, np.mean([len(set(row)) == 1 for row in answers.tolist()]))
    # The votes on the label are a different question with a different kappa.
    assert_close(figures.label.fleiss_kappa, fleiss_kappa(statsmodels_table(agrees)))
    assert figures.as_dict()["answers"]["fleiss_kappa"]["value"] == section.fleiss_kappa.value
    assert list(figures.as_dict())[5:7] == ["answers", "agree_with_label"]  # the paper's kappa first
    assert_json_clean(figures)


def test_the_issues_example_near_perfect_agreement_reads_minus_004_on_votes_and_084_on_answers():
    # 100 persona examples, labels balanced (50 " Yes", 50 " No"), 3 workers each. Workers choose the
    # label's answer on all but 12 ratings, one on each of 12 examples (6 of each label): 96% of votes
    # say "agrees with the label".
    n, k = 100, 3
    labels = np.array([" Yes"] * 50 + [" No"] * 50, dtype=object)
    agrees = np.ones((n, k), dtype=bool)
    for i in [*range(6), *range(50, 56)]:
        agrees[i, i % k] = False
    figures = group_figures(rating_table(**long_form(agrees, labels=labels)), replicates=200)

    other = np.where(labels == " Yes", " No", " Yes")
    answers = np.where(agrees, labels[:, None], other[:, None])
    expected = statsmodels_answer_kappa(answers)
    assert_close(figures.answers.fleiss_kappa, expected)
    assert expected == pytest.approx(0.84)
    # On the agree/disagree votes the chance agreement is 0.96² + 0.04² = 0.9232 against an observed
    # 0.92: kappa is slightly negative although workers agree on 88 of 100 examples.
    assert_close(figures.label.fleiss_kappa, fleiss_kappa(statsmodels_table(agrees)))
    assert figures.label.fleiss_kappa.value == pytest.approx(-0.0417, abs=1e-4)
    assert figures.answers.fleiss_kappa.ci_low > 0.7 > figures.label.fleiss_kappa.ci_high
    assert_close(figures.majority_agrees, 1.0)  # "2+ of 3 agree with the label" keeps its meaning


def test_perfect_agreement_on_answers_is_a_kappa_of_one_not_undefined():
    # Every example unanimous, some on "Yes" and some on "No" (the paper's 1.0 on two sycophancy sets).
    labels = np.array([" Yes", " No"] * 5, dtype=object)
    agrees = np.ones((10, 3), dtype=bool)
    figures = group_figures(rating_table(**long_form(agrees, labels=labels)), replicates=200)
    assert_close(figures.answers.fleiss_kappa, 1.0)
    assert (figures.answers.fleiss_kappa.ci_low, figures.answers.fleiss_kappa.ci_high) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert_close(figures.answers.unanimous, 1.0)
    # The votes are all "agrees": the old kappa cannot be computed on the same ratings.
    assert figures.label.fleiss_kappa.value is None
    assert "chance agreement is 1" in figures.label.fleiss_kappa.undefined


def test_kappa_on_answers_is_undefined_only_when_every_rating_is_one_answer():
    labels = np.array([" Yes"] * 6, dtype=object)
    figures = group_figures(rating_table(**long_form(np.ones((6, 3), bool), labels=labels)), replicates=50)
    assert figures.answers.fleiss_kappa.value is None
    assert figures.answers.fleiss_kappa.undefined == (
        "every recorded answer is “Yes”, so the chance agreement is 1 and kappa is 0/0"
    )
    assert np.isnan(statsmodels_answer_kappa([[" Yes"] * 3] * 6 + [[" Yes"] * 3]))
    assert_close(figures.answers.raw_agreement, 1.0)
    assert_json_clean(figures)


def test_ratings_without_a_recorded_answer_are_left_out_of_the_answer_kappa_only_and_counted():
    answers, agrees, _ = answer_matrices(3, n=20)
    answers = answers.astype(object)
    answers[[2, 7, 7], [0, 1, 2]] = ""  # two examples rated (partly) before answers were recorded
    figures = group_figures(answer_table(answers, agrees), replicates=100)
    kept = [i for i in range(20) if i not in (2, 7)]
    assert figures.examples == 20 and figures.excluded == {}
    assert figures.answers.examples == 18
    assert figures.answers.excluded == {agreement.NO_ANSWER: 2}
    assert figures.as_dict()["answers"]["excluded"] == {agreement.NO_ANSWER: 2}
    assert_close(figures.answers.fleiss_kappa, statsmodels_answer_kappa(answers[kept]))
    # Everything else still counts those two examples.
    assert_close(figures.label.fleiss_kappa, fleiss_kappa(statsmodels_table(agrees)))
    assert_close(figures.majority_agrees, np.mean(agrees.sum(axis=1) >= 2))


def test_no_recorded_answer_at_all_says_why():
    data = long_form([[1, 1, 0], [1, 1, 1]], answers=[["", "", ""], ["", "", ""]])
    figures = group_figures(rating_table(**data), replicates=20)
    assert figures.answers.examples == 0
    assert (
        "none of the 2 example(s) with 3 ratings has 3 recorded answers"
        in figures.answers.fleiss_kappa.undefined
    )
    assert figures.answers.excluded == {agreement.NO_ANSWER: 2}
    one = long_form([[1, 1, 0], [1, 1, 1]], answers=[[" Yes", " Yes", " No"], ["", " Yes", " Yes"]])
    only = group_figures(rating_table(**one), replicates=20).answers
    assert only.examples == 1 and "only one example has 3 recorded answers" in only.fleiss_kappa.undefined
    assert_close(only.raw_agreement, 1 / 3)
    assert only.raw_agreement.ci_undefined == agreement.NO_SPREAD


def test_pooled_tables_use_the_union_of_their_options():
    yes_no, yes_no_agrees, _ = answer_matrices(4, n=15, options=(" Yes", " No"))
    abc, abc_agrees, _ = answer_matrices(5, n=12, options=(" (A)", " (B)", " (C)"))
    first = answer_table(yes_no, yes_no_agrees, options=(" Yes", " No"))
    data = long_form(abc_agrees, answers=abc)
    data["example_ids"] = np.arange(12) + 500
    data["rating_example"] = np.repeat(np.arange(12) + 500, 3)
    data["answer_options"] = ["(B)", "(A)", " (C)"]
    second = rating_table(**data)
    pooled = agreement.table_concat([first, second], k=3)
    assert pooled.answer_options == ("Yes", "No", "(B)", "(A)", "(C)")
    assert [pooled.answer_options[c] for c in pooled.answers[15]] == [a.strip() for a in abc[0]]
    figures = group_figures(pooled, replicates=50)
    assert_close(figures.answers.fleiss_kappa, statsmodels_answer_kappa(np.concatenate([yes_no, abc])))


@pytest.mark.parametrize("seed", [6, 7])
def test_weighted_answer_kappa_equals_statsmodels_on_explicit_resamples(seed):
    answers, agrees, _ = answer_matrices(seed, n=25)
    answers = answers.astype(object)
    answers[4, 1] = ""  # left out of every resample that draws it
    table = answer_table(answers, agrees)
    counts = agreement.answer_counts(table)
    assert counts[4].tolist() == [0, 0, 0] and (counts.sum(axis=1)[table.answered] == 3).all()
    indices = explicit_resamples(25, 30, seed)
    weights = np.stack([np.bincount(row, minlength=25) for row in indices]).astype(float)
    fleiss, observed = agreement.weighted_answer_fleiss(counts, table.answered, weights, k=3)
    for r, idx in enumerate(indices):
        drawn = answers[idx[idx != 4]]
        assert fleiss[r] == pytest.approx(statsmodels_answer_kappa(drawn))
        assert observed[r] == pytest.approx(pairwise_agreement(drawn))


def test_answer_kappa_interval_is_the_percentiles_of_explicit_resamples():
    answers, agrees, _ = answer_matrices(8, n=40, p_agree=0.7)
    table = answer_table(answers, agrees)
    figures = group_figures(table, replicates=200, seed=5)
    values = [statsmodels_answer_kappa(answers[idx]) for idx in explicit_resamples(40, 200, 5)]
    low, high = np.nanpercentile(values, [2.5, 97.5])
    kappa = figures.answers.fleiss_kappa
    assert (kappa.ci_low, kappa.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert kappa.ci_low <= kappa.value <= kappa.ci_high
