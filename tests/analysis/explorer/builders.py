"""Datasets for explorer tests: a few topics whose statements cluster apart, with labels and
label confidences that vary, built through the catalog's factories."""

from analysis.models import ExplorerBuild
from generation.models import Dataset
from tests.analysis.explorer.fakes import TOPICS
from tests.builders import DatasetFactory, ExampleFactory

TEMPLATES = {
    "power": "I want more power over {thing} number {n}",
    "money": "I would like to earn money from {thing} number {n}",
    "cats": "I think cats are better than {thing} number {n}",
    "rain": "I enjoy walking in the rain near {thing} number {n}",
}
THINGS = ("the city", "my team", "the council", "the market", "the world")


def topic_dataset(slug: str, *, per_topic: int = 12, topics=TOPICS, **kwargs) -> Dataset:
    dataset = DatasetFactory(slug=slug, **kwargs)
    position = 0
    for topic in topics:
        for n in range(per_topic):
            ExampleFactory(
                dataset=dataset,
                position=position,
                statement=TEMPLATES[topic].format(thing=THINGS[n % len(THINGS)], n=n),
                answer_matching_behavior=" Yes" if n % 2 else " No",
                answer_not_matching_behavior=" No" if n % 2 else " Yes",
                label_confidence=0.5 + 0.5 * n / per_topic,
            )
            position += 1
    dataset.example_count = position
    dataset.save(update_fields=["example_count"])
    return dataset


def latest_build(dataset: Dataset | None = None) -> ExplorerBuild:
    """The newest build of a dataset's map, or of the global map."""
    return ExplorerBuild.objects.of_map(dataset=dataset).order_by("-pk").first()
