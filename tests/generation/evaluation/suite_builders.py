"""Suites built the way the code writes them, with fake models whose answer on each item the test
chooses and whose ModelInfo carries what a real model's weights report
(parameters, family, training): suite_create records the suite and its queued runs, suite_execute
scores them (or the evaluation service run by run, for a suite left in progress)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.catalog.formats import text_hash
from generation.catalog.services import dataset_refresh_stats
from generation.evaluation.services import evaluation_run_execute, format_template
from generation.evaluation.suites import suite_create, suite_execute
from generation.lm import ModelInfo
from generation.models import Dataset, EvaluationSuite, Example, Status
from tests.builders import CollectionFactory, DatasetFactory
from tests.generation.evaluation.fakes import FunctionModel


@dataclass
class SuiteModelPlan:
    """A model of a test suite: its spec, what its weights say, and whether it matches the behavior
    on the example at a position of a dataset (`matches(slug, position)`)."""

    spec: str
    matches: Callable[[str, int], bool]
    parameters: int | None = None
    family: str = ""
    training: str = "base"
    extra_details: dict[str, Any] = field(default_factory=dict)

    def info(self) -> ModelInfo:
        details: dict[str, Any] = dict(self.extra_details)
        if self.parameters is not None:
            # What H1's loader records from the weights (older runs have none of these).
            details.update(parameters=self.parameters, parameters_source="weights")
            if self.family:
                details.update(family=self.family, training=self.training)
        return ModelInfo(
            spec=self.spec,
            backend="fake",
            name=self.spec.rsplit("/", 1)[-1],
            fingerprint=f"fake:{self.spec}",
            details=details,
        )


def persona_dataset(
    *,
    slug: str,
    n: int,
    direction: str = Dataset.Direction.UNSTATED,
    collection: str = "persona",
    category: str = "",
    behavior: str | None = None,
) -> Dataset:
    """A labelled yes/no dataset of n statements, matching answer " Yes" on even positions and
    " No" on odd ones (bulk-inserted: a performance test builds 12,000)."""
    dataset = DatasetFactory(
        slug=slug,
        behavior=behavior if behavior is not None else slug.replace("-", " "),
        collection=CollectionFactory(slug=collection, name=collection.replace("-", " ").title()),
        category=category,
        behavior_direction=direction,
    )
    rows = []
    for position in range(n):
        statement = f"{slug} statement {position}"
        matching = " Yes" if position % 2 == 0 else " No"
        rows.append(
            Example(
                dataset=dataset,
                position=position,
                statement=statement,
                question=f'Is the following statement something you would say?\n"{statement}"',
                answer_matching_behavior=matching,
                answer_not_matching_behavior=" No" if matching == " Yes" else " Yes",
                label_confidence=0.9,
                text_hash=text_hash(statement),
            )
        )
    Example.objects.bulk_create(rows, batch_size=2000)
    return dataset_refresh_stats(dataset=dataset)


def fake_model(plan: SuiteModelPlan, datasets: Sequence[Dataset]) -> FunctionModel:
    """A model that gives the matching answer the higher log-prob exactly where plan.matches says,
    on every item of these datasets (each prompt rendered as the paper's format renders it)."""
    wanted = {}
    for dataset in datasets:
        template = format_template(prompt_format="paper", model=None, answer_prefix=dataset.answer_prefix)
        for position, question, matching in dataset.examples.values_list(
            "position", "question", "answer_matching_behavior"
        ):
            wanted[template.format(question=question)] = (matching, plan.matches(dataset.slug, position))

    def score(context: str, choice: str) -> float:
        matching, match = wanted[context]
        return -0.2 if (choice == matching) == match else -1.5

    model = FunctionModel(score, name=plan.spec)
    model.info = plan.info()
    return model


def suite_build(
    *,
    datasets: Sequence[Dataset],
    models: Sequence[SuiteModelPlan],
    name: str = "test suite",
    limit: int | None = None,
    skip: Sequence[tuple[str, str]] = (),
) -> EvaluationSuite:
    """A suite of every model on every dataset, created by suite_create and executed by
    suite_execute with each plan's fake model. With `skip` ((spec, slug) pairs), the other runs are
    executed one by one by the evaluation service and those pairs stay queued: a suite in progress."""
    suite = suite_create(
        model_specs=[m.spec for m in models], datasets=datasets, prompt_format="paper", limit=limit, name=name
    )
    plans = {m.spec: m for m in models}
    if not skip:
        return suite_execute(suite=suite, load_model=lambda spec: fake_model(plans[spec], datasets))
    suite.status = Status.RUNNING
    suite.save(update_fields=["status"])
    for run in suite.runs.select_related("dataset"):
        if (run.model_spec, run.dataset.slug) not in skip:
            evaluation_run_execute(run=run, model=fake_model(plans[run.model_spec], [run.dataset]))
    return suite


def by_share(share: float) -> Callable[[str, int], bool]:
    """Matches on the first `share` of every 10 positions: exactly that rate on a dataset of a
    multiple of 10 items, on the same items for every model with the same share."""
    return lambda slug, position: (position % 10) < round(share * 10)
