"""Issue 15's acceptance check, end to end: ratings submitted through the site's own claim and submit
services give, on the agreement page, its exports and the report command, a Fleiss' kappa on the
chosen answers equal to statsmodels' `fleiss_kappa` on the answer counts built here, independently,
from what the workers submitted."""

import io
import json
import random
from collections import defaultdict

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from annotation.services.projects import project_create
from generation.models import Example
from tests.analysis.builders import examples_create, submit_all
from tests.builders import CollectionFactory, DatasetFactory, StaffFactory, WorkerFactory

pytestmark = pytest.mark.django_db

OPTIONS = (" (A)", " (B)", " (C)")


@pytest.fixture(autouse=True)
def few_resamples(settings):
    settings.ANALYSIS_BOOTSTRAP_REPLICATES = 50


@pytest.fixture
def rated():
    """A persona dataset (Yes/No, labels balanced) and a three-option multiple-choice dataset, 12
    examples each, rated by 3 of 5 workers who mostly choose the label's answer."""
    collection = CollectionFactory(slug="mixed", name="Mixed")
    persona = DatasetFactory(slug="persona-like", collection=collection)
    examples_create(persona, 12, matching=[" Yes", " No"] * 6)
    choice = DatasetFactory(slug="choice-like", collection=collection)
    for position in range(12):
        label = OPTIONS[position % 3]
        Example.objects.create(
            dataset=choice,
            position=position,
            question=f"Question {position}?\n\nChoices:\n (A) one\n (B) two\n (C) three",
            answer_matching_behavior=label,
            answer_not_matching_behavior=[o for o in OPTIONS if o != label],
            label_confidence=None,
            text_hash=f"choice-{position}",
        )
    project = project_create(name="Accept", slug="accept", datasets=[persona, choice], overlap=3)
    workers = [WorkerFactory(projects=[project]) for _ in range(5)]
    rng = random.Random(15)

    def choose(worker, example):
        options = example.answer_choices
        answer = options[0] if rng.random() < 0.8 else rng.choice(options[1:])
        return answer, rng.randint(3, 5), rng.random() < 0.1

    submitted = submit_all(project, workers, choose)
    assert len(submitted) == 24 * 3
    return project, submitted


def expected_kappa(submitted, example_ids=None):
    """statsmodels on the answer counts: one row per example, one column per option (the answers
    as submitted, one category per distinct text)."""
    per_example = defaultdict(list)
    for (example_id, _), answer in submitted.items():
        if example_ids is None or example_id in example_ids:
            per_example[example_id].append(answer)
    rows = [per_example[example_id] for example_id in sorted(per_example)]
    assert all(len(row) == 3 for row in rows)
    counts, _ = aggregate_raters(rows)
    return fleiss_kappa(counts, method="fleiss")


def test_kappa_on_chosen_answers_equals_statsmodels_on_the_answer_counts(rated):
    project, submitted = rated
    client = Client()
    client.force_login(StaffFactory())
    document = json.loads(client.get(reverse("analysis:figures-json", args=[project.slug])).content)
    pooled = document["pooled"]["answers"]
    assert pooled["examples"] == 24 and pooled["excluded"] == {}
    assert set(pooled["options"]) == {"Yes", "No", "(A)", "(B)", "(C)"}
    assert pooled["fleiss_kappa"]["value"] == pytest.approx(expected_kappa(submitted), abs=1e-12)
    for group in document["datasets"]:
        ids = set(Example.objects.filter(dataset__slug=group["slug"]).values_list("pk", flat=True))
        assert group["answers"]["fleiss_kappa"]["value"] == pytest.approx(
            expected_kappa(submitted, ids), abs=1e-12
        ), group["slug"]

    # The page shows the same figure first, named as the paper's.
    page = client.get(reverse("analysis:dashboard", args=[project.slug]))
    figure = page.context["report"].pooled.figures.answers.fleiss_kappa
    assert figure.value == pytest.approx(expected_kappa(submitted), abs=1e-12)
    content = page.content.decode()
    assert f"Fleiss' κ (chosen answers): <strong>{figure.value:.2f}</strong>" in content
    assert content.index("Fleiss' κ (chosen answers)") < content.index("κ on agree-with-label votes")

    out = io.StringIO()
    call_command("agreement_report", "--project", project.slug, "--replicates", "50", stdout=out)
    assert f"Fleiss κ (chosen answers) {expected_kappa(submitted):.2f} [" in out.getvalue()


def test_agree_with_label_is_the_chosen_answer_being_the_labels(rated):
    project, submitted = rated
    client = Client()
    client.force_login(StaffFactory())
    document = json.loads(client.get(reverse("analysis:figures-json", args=[project.slug])).content)
    labels = dict(
        Example.objects.filter(annotation_items__project=project).values_list(
            "pk", "answer_matching_behavior"
        )
    )
    per_example = defaultdict(int)
    for (example_id, _), answer in submitted.items():
        per_example[example_id] += answer == labels[example_id]
    majority = sum(votes >= 2 for votes in per_example.values()) / len(per_example)
    assert document["pooled"]["agree_with_label"]["majority_agrees"]["value"] == pytest.approx(majority)
