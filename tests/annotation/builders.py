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


def build_study_project(
    *, platform: str = "prolific", study_quota: int = 5, completion_code: str = "C0DE42", **kwargs
):
    """A project (build_project's keywords) with its study link on for `platform`, as a researcher
    turns it on."""
    from annotation.services.studies import project_study_link_set

    return project_study_link_set(
        project=build_project(**kwargs),
        platform=platform,
        study_quota=study_quota,
        completion_code=completion_code,
    )


def prolific_ids(participant: int = 0, *, session: int | None = None, study: int = 0) -> dict[str, str]:
    """The ids Prolific puts into a study link for a participant (24 lowercase hex characters each);
    each participant has a session of their own unless `session` says which."""
    return {
        "PROLIFIC_PID": f"5f{participant:022x}",
        "STUDY_ID": f"6a{study:022x}",
        "SESSION_ID": f"7b{participant if session is None else session:022x}",
    }


def mturk_ids(
    participant: int = 0, *, assignment: int | None = None, submit_to: str = "https://workersandbox.mturk.com"
) -> dict[str, str]:
    """The ids Mechanical Turk's ExternalQuestion appends for a worker's accepted assignment."""
    return {
        "workerId": f"A{participant:013d}",
        "hitId": "3HIT" + "0" * 26,
        "assignmentId": f"3ASN{participant if assignment is None else assignment:026d}",
        "turkSubmitTo": submit_to,
    }
