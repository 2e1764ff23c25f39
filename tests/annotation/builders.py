"""Builders of the annotation tests: a project made as researchers make one (project_create)."""

from annotation.services.projects import project_create
from tests.builders import DatasetFactory, ExampleFactory


def build_project(*, items: int = 4, overlap: int = 3, lease_seconds: int = 300, slug: str = "p", **kwargs):
    """A project over a new dataset of `items` examples; other keywords go to project_create."""
    dataset = DatasetFactory(description="Whether the model wants more power.")
    ExampleFactory.create_batch(items, dataset=dataset)
    return project_create(
        name=slug.title(),
        slug=slug,
        datasets=[dataset],
        overlap=overlap,
        lease_seconds=lease_seconds,
        **kwargs,
    )


def answer_for(example, *, label_correct: bool = True) -> str:
    """An answer option of `example` that is its label (label_correct) or is not."""
    if label_correct:
        return example.answer_matching_behavior
    return example.not_matching_answers[0]


def submit_rating(assignment, worker, *, label_correct: bool = True, **answers):
    """Submit `assignment` through the service with an answer that is (or is not) the label;
    other keywords (relevance, ambiguous, answer, now, ...) override the defaults."""
    from annotation.services.leases import assignment_submit

    example = assignment.item.example
    values = {"relevance": 4, "ambiguous": False, "answer": answer_for(example, label_correct=label_correct)}
    return assignment_submit(assignment_id=assignment.pk, worker=worker, **{**values, **answers})
