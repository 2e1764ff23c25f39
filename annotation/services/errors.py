"""The domain errors of the annotation services; the API and the pages turn them into HTTP answers
(404, 409, 403, 400). Nothing is written when one is raised."""

from __future__ import annotations

from annotation.models import Assignment


class AnnotationError(Exception):
    """Base of the domain errors the API turns into HTTP answers."""


class AssignmentNotFound(AnnotationError):
    """No such assignment for this worker (also another worker's assignment: never reveal it)."""


class AssignmentConflict(AnnotationError):
    """The assignment cannot take this action any more (HTTP 409): submitted twice, released, or
    expired with its slot given to another worker."""


class InvalidAnswer(AnnotationError, ValueError):
    """The answer a worker submitted is not one of the item's answer options (HTTP 400)."""


class WorkerExcluded(AnnotationError):
    """An excluded worker gets no new tasks."""


class InviteExpired(AnnotationError):
    """The invite link is past its expiry, or revoked: it signs no one in."""


# Why a submit is refused, by the lease's status (the same words on SQLite and PostgreSQL).
SUBMIT_CONFLICTS = {
    Assignment.Status.SUBMITTED: "this assignment was already submitted",
    Assignment.Status.RELEASED: "this assignment was released",
    Assignment.Status.EXPIRED: "the lease expired and the item was given to another worker",
}


def invalid_answer_message(answer: str) -> str:
    """Why a submitted answer is refused (the same words on SQLite and PostgreSQL)."""
    return (
        f"answer {answer!r} is not one of this item's answer options "
        "(send one of the task's answer_options back exactly as given)"
    )
