"""The rating tables read from the database: per dataset, per collection, pooled; gold items never in
them; gold-failing and excluded workers left out by default; a query count that does not grow with
the number of datasets."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analysis.agreement import figures as agreement
from analysis.agreement import selectors
from analysis.agreement.selectors import RatingOptions
from annotation.models import ProjectItem, Worker
from annotation.services.projects import project_create, project_item_mark_gold
from annotation.services.workers import worker_set_excluded
from generation.models import Example
from tests.analysis.builders import answer_gold, examples_create, rate, rate_legacy, rated_project
from tests.builders import CollectionFactory, DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def small():
    """Two datasets in two collections; 'a' has three examples, 'b' two; ratings by w1-w4."""
    first = DatasetFactory(slug="a", collection=CollectionFactory(slug="c1", name="First"))
    second = DatasetFactory(slug="b", collection=CollectionFactory(slug="c2", name="Second"))
    examples_create(first, 3, confidence=[0.9, None, 0.6])
    examples_create(second, 2)
    project = project_create(name="Small", slug="small", datasets=[first, second], overlap=3)
    rate(
        project,
        [
            ("a", 0, "w3", 5, True, False),
            ("a", 0, "w1", 4, True, False),
            ("a", 0, "w2", 3, False, True),
            ("a", 1, "w1", 2, True, False),
            ("a", 1, "w2", 2, True, False),
            ("a", 1, "w4", 1, False, False),
            ("a", 2, "w1", 5, True, False),  # one rating of three so far
            ("b", 0, "w1", 4, True, True),
            ("b", 0, "w2", 4, True, True),
            ("b", 0, "w3", 4, True, False),
        ],
    )
    return project


def worker_pk(external_id):
    return Worker.objects.get(external_id=external_id).pk


def test_tables_per_dataset_hold_the_complete_examples(small):
    ratings = selectors.project_ratings(project=small)
    assert [d.slug for d in ratings.datasets] == ["a", "b"]
    a, b = (ratings.tables[d.pk] for d in ratings.datasets)
    first = ratings.datasets[0].examples.order_by("position")
    assert a.example_ids.tolist() == [first[0].pk, first[1].pk]
    w1, w2, w3, w4 = (worker_pk(f"w{i}") for i in range(1, 5))
    assert a.workers.tolist() == [[w1, w2, w3], [w1, w2, w4]]
    assert a.relevance.tolist() == [[4, 3, 5], [2, 2, 1]]
    assert a.label_correct.tolist() == [[True, False, True], [True, True, False]]
    assert a.ambiguous.tolist() == [[False, True, False], [False, False, False]]
    # The answers chosen: the label's (" Yes") where the rating agrees with it, else " No".
    assert a.answer_options == ("Yes", "No")
    assert a.answers.tolist() == [[0, 1, 0], [0, 0, 1]]
    assert a.label_confidence[0] == 0.9 and np.isnan(a.label_confidence[1])
    assert a.excluded == {"fewer than 3 ratings so far": 1}
    assert b.n == 1 and b.excluded == {"not rated yet": 1}
    pooled = ratings.pooled_table()
    assert pooled.n == 3 and pooled.excluded == {"fewer than 3 ratings so far": 1, "not rated yet": 1}
    assert [(c.slug, [d.slug for d in members]) for c, members in ratings.collections()] == [
        ("c1", ["a"]),
        ("c2", ["b"]),
    ]


def test_one_dataset_or_one_collection_only(small):
    a = small.datasets.get(slug="a")
    only = selectors.project_ratings(project=small, dataset=a)
    assert [d.slug for d in only.datasets] == ["a"] and only.tables[a.pk].n == 2
    by_collection = selectors.project_ratings(project=small, collection=a.collection)
    assert [d.slug for d in by_collection.datasets] == ["a"]


def test_report_figures_equal_the_figures_of_the_tables(small):
    report = selectors.project_report(project=small, options=RatingOptions(replicates=50))
    assert [g.slug for g in report.datasets] == ["a", "b"]
    assert [g.slug for g in report.collections] == ["c1", "c2"]
    assert report.pooled.scope == "pooled" and report.pooled.figures.examples == 3
    a_table = report.datasets[0].table
    assert report.datasets[0].figures == agreement.group_figures(a_table, replicates=50)
    # 'b' has one complete example: kappa is undefined, and says so.
    assert "only one example" in report.datasets[1].figures.label.fleiss_kappa.undefined
    document = report.as_dict()
    assert document["k"] == 3 and document["datasets"][0]["collection"] == "c1"
    assert document["datasets"][0]["excluded"] == {"fewer than 3 ratings so far": 1}
    assert [group.slug for group in report.groups()] == ["small", "c1", "c2", "a", "b"]


def gold_setup(project, *, wrong_worker: str, right_worker: str, min_answers: int = 2):
    """Two gold items; one worker answers both wrongly, another both rightly."""
    dataset = DatasetFactory(slug="gold-source")
    gold_examples = examples_create(dataset, 2)
    project.gold_rate = 1.0
    project.gold_min_answers = min_answers
    project.save()
    for example in gold_examples:
        item = ProjectItem.objects.create(project=project, example=example, overlap=project.overlap)
        project_item_mark_gold(item=item, label_correct=True, ambiguous=False)
    # The site mixes gold in only while regular work is open for the worker: b#1 is unrated.
    for external_id, right in ((wrong_worker, False), (right_worker, True)):
        answer_gold(project, Worker.objects.get(external_id=external_id), right=right, times=2)


def test_gold_items_never_enter_the_figures_and_gold_failing_workers_are_left_out(small):
    gold_setup(small, wrong_worker="w4", right_worker="w1")
    default = selectors.project_ratings(project=small)
    assert "gold-source" not in [d.slug for d in default.datasets]
    assert default.left_out_workers == {selectors.GOLD_FAILING: 1}
    assert default.left_out_ratings == 1
    a = default.tables[small.datasets.get(slug="a").pk]
    # w4 rated a#1: without their rating it has two of three.
    assert a.n == 1
    assert a.excluded == {
        "fewer than 3 ratings so far": 1,
        "fewer than 3 ratings once left-out workers are removed": 1,
    }
    assert worker_pk("w4") not in a.workers
    included = selectors.project_ratings(project=small, options=RatingOptions(include_gold_failing=True))
    assert included.left_out_workers == {} and included.tables[a_pk(small)].n == 2
    pooled = included.pooled_table()
    gold_ids = set(
        ProjectItem.objects.filter(project=small, is_gold=True).values_list("example_id", flat=True)
    )
    assert not gold_ids & set(pooled.example_ids.tolist())


def a_pk(project):
    return project.datasets.get(slug="a").pk


def test_too_few_gold_answers_do_not_fail_a_worker(small):
    gold_setup(small, wrong_worker="w4", right_worker="w1", min_answers=3)
    assert selectors.project_ratings(project=small).left_out_workers == {}


def test_excluded_workers_are_left_out_unless_included(small):
    worker_set_excluded(worker=Worker.objects.get(external_id="w3"), excluded=True, reason="spam")
    default = selectors.project_ratings(project=small)
    assert default.left_out_workers == {selectors.EXCLUDED: 1}
    assert default.tables[a_pk(small)].n == 1
    assert default.pooled_table().n == 1
    both = selectors.project_ratings(project=small, options=RatingOptions(include_excluded=True))
    assert both.left_out_workers == {} and both.pooled_table().n == 3


def test_lm_and_human_written_datasets_of_one_behavior_are_paired():
    collection = CollectionFactory(slug="advanced-ai-risk")
    pairs = {}
    for behavior in ("power seeking inclination", "survival instinct"):
        for category, suffix in (("Human-written", "human"), ("LM-written", "lm")):
            slug = f"{behavior.replace(' ', '-')}-{suffix}"
            pairs[slug] = DatasetFactory(
                slug=slug, behavior=behavior, category=category, collection=collection
            )
    lonely = DatasetFactory(
        slug="myopic-reward-lm", behavior="myopic reward", category="LM-written", collection=collection
    )
    for dataset in [*pairs.values(), lonely]:
        examples_create(dataset, 3)
    project = project_create(name="Risk", slug="risk", datasets=[*pairs.values(), lonely], overlap=3)
    report = selectors.project_report(project=project, options=RatingOptions(replicates=20))
    comparisons = report.comparisons
    assert [(c.behavior, c.lm.slug, c.human.slug) for c in comparisons] == [
        ("power seeking inclination", "power-seeking-inclination-lm", "power-seeking-inclination-human"),
        ("survival instinct", "survival-instinct-lm", "survival-instinct-human"),
    ]
    assert report.as_dict()["lm_vs_human"][0] == {
        "behavior": "power seeking inclination",
        "lm": "power-seeking-inclination-lm",
        "human": "power-seeking-inclination-human",
    }


def test_group_detail_has_dawid_skene_calibration_and_example_references(small):
    report = selectors.project_report(project=small, options=RatingOptions(replicates=20))
    detail = selectors.group_detail(report.datasets[0], project=small)
    assert set(detail.worker_names.values()) == {"w1", "w2", "w3", "w4"}
    rows = detail.example_rows()
    assert [
        (r["dataset"], r["position"], r["answers"], r["label_correct_votes"], r["majority_vote"])
        for r in rows
    ] == [
        ("a", 0, "Yes: 2; No: 1", 2, "correct"),
        ("a", 1, "Yes: 2; No: 1", 2, "correct"),
    ]
    assert rows[1]["label_confidence"] is None and rows[0]["mean_relevance"] == 4.0
    assert detail.dawid_skene.undefined == "" and len(detail.dawid_skene.workers) == 4
    assert [b.examples for b in detail.calibration] == [1]
    document = detail.as_dict()
    assert {w["worker"] for w in document["dawid_skene"]["workers"]} == {"w1", "w2", "w3", "w4"}
    assert document["calibration"][0]["examples"] == 1


def test_projects_listed_with_their_dataset_and_response_counts(small):
    rated_project(datasets=2, examples=2, slug="other")
    listed = {p.slug: (p.dataset_count, p.response_count) for p in selectors.analysis_projects()}
    assert listed == {"small": (2, 10), "other": (2, 12)}


def count_queries(func) -> int:
    with CaptureQueriesContext(connection) as context:
        func()
    return len(context.captured_queries)


def test_query_count_does_not_grow_with_the_number_of_datasets():
    few = rated_project(datasets=2, examples=2, slug="few")
    many = rated_project(datasets=150, examples=2, slug="many", seed=1)
    options = RatingOptions(replicates=10)
    few_count = count_queries(lambda: selectors.project_report(project=few, options=options))
    many_count = count_queries(lambda: selectors.project_report(project=many, options=options))
    assert many_count == few_count <= 5
    report = selectors.project_report(project=many, options=options)
    assert len(report.datasets) == 150 and report.pooled.figures.examples == 300


def test_ratings_imported_without_an_answer_are_left_out_of_the_answer_kappa_and_counted():
    """Ratings of the older task (label_correct only): the importer recovers the answer where the
    example has one other option and leaves it empty where it has several; such examples still
    count in every other figure."""
    options = [" (A)", " (B)", " (C)"]
    dataset = DatasetFactory(slug="three-options")
    for position in range(4):
        Example.objects.create(
            dataset=dataset,
            position=position,
            question=f"Question {position}?",
            answer_matching_behavior=options[position % 3],
            answer_not_matching_behavior=[o for o in options if o != options[position % 3]],
            text_hash=f"three-{position}",
        )
    project = project_create(name="Old", slug="old", datasets=[dataset], overlap=3)
    # Examples 0 and 1: one worker says the label is wrong (which other option is not known).
    rows = [
        ("three-options", p, w, 4, not (p < 2 and w == "w3"), False)
        for p in range(4)
        for w in ("w1", "w2", "w3")
    ]
    rate_legacy(project, rows)
    report = selectors.project_report(project=project, options=RatingOptions(replicates=20))
    figures = report.datasets[0].figures
    assert figures.examples == 4 and figures.excluded == {}
    assert figures.answers.examples == 2
    assert figures.answers.excluded == {agreement.NO_ANSWER: 2}
    assert report.as_dict()["pooled"]["answers"]["excluded"] == {agreement.NO_ANSWER: 2}
    assert figures.majority_agrees.value == 1.0
    rows = selectors.group_detail(report.datasets[0], project=project).example_rows()
    assert [r["answers"] for r in rows] == [
        "(A): 2; not recorded: 1",
        "(B): 2; not recorded: 1",
        "(C): 3",
        "(A): 3",
    ]
