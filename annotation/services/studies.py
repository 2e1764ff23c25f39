"""Entry from crowd platforms (Prolific, Amazon Mechanical Turk) through a project's study link,
/annotate/study/<study_token>/, which the platform opens with its own ids in the query: Prolific's
PROLIFIC_PID, STUDY_ID and SESSION_ID; Mechanical Turk's workerId, hitId, assignmentId and
turkSubmitTo. The link finds or creates the worker itself (no invite is made beforehand), records
the arrival as a StudySession, and the page signs the browser in as the invite link does.

The platform's ids are checked against the platform's own formats and used for nothing but finding
the participant and their session again and reporting them (the payment report): never as a
credential beyond the study link itself, never shown back unescaped, never put into a URL but the
platform's own `turkSubmitTo`, which must be one of Mechanical Turk's two hosts.

A participant does at most the project's `study_quota` tasks (`leases.task_claim` enforces it; see
`selectors.worker_study_quota_left`), then gets the project's completion code. Whoever runs out of
items first is finished too, with the code: the pool ran out, not their patience."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.http import QueryDict
from django.utils import timezone

from annotation.models import AnnotationProject, StudyPlatform, StudySession, Worker
from annotation.selectors import worker_study_quota_left
from annotation.services.errors import AnnotationError, WorkerExcluded
from annotation.services.leases import task_claim
from annotation.services.workers import worker_account

PROLIFIC_ID = re.compile(r"[0-9a-f]{24}")
# Mechanical Turk's worker, HIT and assignment ids: uppercase letters and digits (about 14 and 30
# characters today); bounded well below the columns they are stored in.
MTURK_ID = re.compile(r"[A-Z0-9]{1,64}")
MTURK_SUBMIT_HOSTS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
# The assignmentId Mechanical Turk sends while a worker previews a HIT they have not accepted.
MTURK_PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
COMPLETION_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
MAX_STUDY_QUOTA = 10_000
MAX_PAY_PER_HOUR = Decimal("999999.99")


class StudyError(AnnotationError):
    """Base of the study link's refusals; the message is safe to show the participant."""


class StudyLinkClosed(StudyError):
    """The project is closed, or its study link was turned off or replaced."""


class StudyIdsInvalid(StudyError):
    """The platform's ids are missing, malformed, repeated, or contradict an earlier arrival."""


class StudyParticipantExcluded(StudyError):
    """The participant was excluded (by a researcher or the gold rule): no more tasks."""


@dataclass(frozen=True)
class StudyIds:
    """A platform's ids for one arrival, validated. `preview`: a Mechanical Turk worker looking at a
    HIT they have not accepted (only `session_id`, the preview marker, is set)."""

    platform: str
    participant_id: str
    study_id: str
    session_id: str
    submit_to: str = ""
    preview: bool = False


@dataclass(frozen=True)
class StudyEntry:
    """What an arrival through the study link led to. `finished`: the participant has already done
    the quota (a returning participant): show the completion page, not a task."""

    ids: StudyIds
    worker: Worker | None = None
    study_session: StudySession | None = None
    finished: bool = False


def _values(query: Mapping[str, str] | QueryDict, name: str) -> list[str]:
    if isinstance(query, QueryDict):
        return query.getlist(name)
    value = query.get(name)
    return [] if value is None else [value]


def _one(query, name: str, pattern: re.Pattern, what: str, problems: list[str]) -> str:
    values = _values(query, name)
    if len(values) != 1:
        problems.append(f"{name} is {'missing' if not values else 'given more than once'}")
        return ""
    if not pattern.fullmatch(values[0]):
        problems.append(f"{name} is not {what}")
        return ""
    return values[0]


def study_ids_parse(*, platform: str, query: Mapping[str, str] | QueryDict) -> StudyIds:
    """The platform's ids from the study link's query, validated; other parameters are ignored.
    Prolific: PROLIFIC_PID, STUDY_ID and SESSION_ID, each 24 lowercase hexadecimal characters.
    Mechanical Turk: workerId, hitId and assignmentId (uppercase letters and digits, at most 64) and
    turkSubmitTo (https://www.mturk.com or https://workersandbox.mturk.com); assignmentId
    ASSIGNMENT_ID_NOT_AVAILABLE is a preview, which needs nothing else. Raises StudyIdsInvalid
    naming every problem (never repeating the values given)."""
    problems: list[str] = []
    if platform == StudyPlatform.PROLIFIC:
        what = "a Prolific id (24 lowercase hexadecimal characters)"
        ids = StudyIds(
            platform=platform,
            participant_id=_one(query, "PROLIFIC_PID", PROLIFIC_ID, what, problems),
            study_id=_one(query, "STUDY_ID", PROLIFIC_ID, what, problems),
            session_id=_one(query, "SESSION_ID", PROLIFIC_ID, what, problems),
        )
    elif platform == StudyPlatform.MTURK:
        if _values(query, "assignmentId") == [MTURK_PREVIEW]:
            return StudyIds(platform=platform, participant_id="", study_id="", session_id="", preview=True)
        what = "a Mechanical Turk id (up to 64 uppercase letters and digits)"
        given = _values(query, "turkSubmitTo")
        submit_to = given[0].rstrip("/") if len(given) == 1 else ""
        if submit_to not in MTURK_SUBMIT_HOSTS:
            problems.append("turkSubmitTo is not one of " + " or ".join(MTURK_SUBMIT_HOSTS))
        ids = StudyIds(
            platform=platform,
            participant_id=_one(query, "workerId", MTURK_ID, what, problems),
            study_id=_one(query, "hitId", MTURK_ID, what, problems),
            session_id=_one(query, "assignmentId", MTURK_ID, what, problems),
            submit_to=submit_to,
        )
    else:
        raise StudyLinkClosed("this study link is not open")
    if problems:
        raise StudyIdsInvalid("; ".join(problems))
    return ids


def _link_open(project: AnnotationProject, platform: str) -> bool:
    return bool(project.is_active and project.study_token and project.study_platform == platform)


def _participant(ids: StudyIds) -> Worker:
    """The platform's participant as a worker, found or created, its row locked. Two arrivals of a
    new participant at once both try to create them: the unique (platform, external_id) constraint
    lets one insert win, and the other (on PostgreSQL its insert waits for the winner's commit)
    takes the winner's row. Call inside a transaction."""
    lookup = {"platform": ids.platform, "external_id": ids.participant_id}
    worker = Worker.objects.select_for_update().filter(**lookup).first()
    if worker is not None:
        return worker
    try:
        with transaction.atomic():
            # No invite link (expiry None): the study link is how this worker signs in.
            return Worker.objects.create(**lookup, invite_expires_at=None)
    except IntegrityError:
        return Worker.objects.select_for_update().get(**lookup)


def _study_session(*, project: AnnotationProject, worker: Worker, ids: StudyIds) -> StudySession:
    """The participant's session with these ids: the one they started before (coming back), or a
    new one. A session id already used by another participant, study or submit host is refused:
    ids that contradict an earlier arrival are not trusted."""
    lookup = {"project": project, "platform": ids.platform, "session_id": ids.session_id}
    session = StudySession.objects.filter(**lookup).first()
    if session is None:
        try:
            with transaction.atomic():
                return StudySession.objects.create(
                    **lookup, worker=worker, study_id=ids.study_id, submit_to=ids.submit_to
                )
        except IntegrityError:
            # The same session id arrived at once for another participant (this one's row is
            # locked, so not for them).
            session = StudySession.objects.get(**lookup)
    if (session.worker_id, session.study_id, session.submit_to) != (worker.pk, ids.study_id, ids.submit_to):
        raise StudyIdsInvalid("this session id was already used by another participant or study")
    return session


def _complete(session: StudySession, *, now) -> StudySession:
    StudySession.objects.filter(pk=session.pk, completed_at__isnull=True).update(completed_at=now)
    session.refresh_from_db(fields=["completed_at"])
    return session


@transaction.atomic
def study_participant_enter(
    *, project: AnnotationProject, platform: str, query: Mapping[str, str] | QueryDict, now=None
) -> StudyEntry:
    """An arrival through the project's study link on `platform`, with the platform's ids in `query`
    (`study_ids_parse`). Finds or creates the worker (platform + participant id), with their site
    account, adds them to the project and finds or starts their StudySession (a participant coming
    back with the same session id continues it; with a new session id, a new one: the quota counts
    per participant, over all their sessions). A Mechanical Turk preview creates nothing.

    Raises StudyLinkClosed (the project closed, the link off or for another platform),
    StudyIdsInvalid, StudyParticipantExcluded; nothing is written then. Safe under concurrency:
    two arrivals of one participant at once make one worker and one session."""
    if not _link_open(project, platform):
        raise StudyLinkClosed("this study link is closed")
    ids = study_ids_parse(platform=platform, query=query)
    if ids.preview:
        return StudyEntry(ids=ids)
    # The project as it is now, not as the caller looked it up: a link turned off or rotated since
    # lets no one in.
    current = AnnotationProject.objects.filter(pk=project.pk).first()
    if current is None or not _link_open(current, platform) or current.study_token != project.study_token:
        raise StudyLinkClosed("this study link is closed")
    worker = _participant(ids)
    if worker.excluded:
        raise StudyParticipantExcluded("you can no longer take part in this study")
    worker = worker_account(worker)
    worker.projects.add(current)
    session = _study_session(project=current, worker=worker, ids=ids)
    finished = worker_study_quota_left(worker=worker, project=current) == 0
    if finished:
        session = _complete(session, now=now or timezone.now())
    return StudyEntry(ids=ids, worker=worker, study_session=session, finished=finished)


def study_participant_finish(*, worker: Worker, study_session: StudySession, now=None) -> StudySession | None:
    """Mark the participant's study session completed if they are finished: they have done the
    project's quota, or no task is left for them now (the pool ran out first, or the project
    closed). Returns the session, completed; None when they are not finished (a task was left: it
    is now leased to them, and the worker page shows it) or are excluded."""
    project = study_session.project
    if study_session.worker_id != worker.pk:
        raise ValueError("the study session is another worker's")
    if study_session.completed_at is not None:
        return study_session
    left = worker_study_quota_left(worker=worker, project=project)
    if left:
        try:
            if task_claim(worker=worker, project=project) is not None:
                return None
        except WorkerExcluded:
            return None
    elif Worker.objects.filter(pk=worker.pk, excluded=True).exists():
        return None
    return _complete(study_session, now=now or timezone.now())


def study_session_current(*, worker: Worker, session_id: int | None = None) -> StudySession | None:
    """The study session a participant's browser entered with (`session_id`, when it is theirs),
    else their latest one; None for a worker who never came through a study link."""
    sessions = StudySession.objects.filter(worker=worker).select_related("project")
    if session_id is not None:
        found = sessions.filter(pk=session_id).first()
        if found is not None:
            return found
    return sessions.order_by("-started_at", "-pk").first()


# --- The researchers' side ----------------------------------------------------------------------------


def _study_settings_problems(
    *,
    platform: str,
    study_quota,
    completion_code: str,
    completion_url: str,
    pay_per_hour,
    bonus_gold_accuracy,
) -> dict[str, str]:
    problems = {}
    if platform and platform not in StudyPlatform.values:
        problems["study_platform"] = f"Choose one of {', '.join(StudyPlatform.values)}, or none."
    if not (
        isinstance(study_quota, int)
        and not isinstance(study_quota, bool)
        and 1 <= study_quota <= MAX_STUDY_QUOTA
    ):
        problems["study_quota"] = f"The quota must be a whole number from 1 to {MAX_STUDY_QUOTA}."
    if completion_code and not COMPLETION_CODE.fullmatch(completion_code):
        problems["completion_code"] = "Use at most 64 letters, digits, hyphens and underscores."
    elif platform and not completion_code:
        problems["completion_code"] = "A study link needs the completion code the platform expects."
    if completion_url:
        try:
            URLValidator(schemes=["https"])(completion_url)
        except ValidationError:
            problems["completion_url"] = "Give an https:// address."
        if len(completion_url) > AnnotationProject._meta.get_field("completion_url").max_length:
            problems["completion_url"] = "The address is too long."
    if pay_per_hour is not None:
        try:
            pay = Decimal(pay_per_hour)
        except (InvalidOperation, TypeError, ValueError):
            pay = None
        if (
            pay is None
            or not pay.is_finite()
            or not (0 <= pay <= MAX_PAY_PER_HOUR)
            or pay != pay.quantize(Decimal("0.01"))
        ):
            problems["pay_per_hour"] = f"Give an amount from 0 to {MAX_PAY_PER_HOUR}, in cents at most."
    if bonus_gold_accuracy is not None and not (
        isinstance(bonus_gold_accuracy, int | float) and 0.0 <= bonus_gold_accuracy <= 1.0
    ):
        problems["bonus_gold_accuracy"] = "Give a gold accuracy from 0 to 1."
    return problems


@transaction.atomic
def project_study_link_set(
    *,
    project: AnnotationProject,
    platform: str,
    study_quota: int,
    completion_code: str = "",
    completion_url: str = "",
    pay_per_hour: Decimal | None = None,
    bonus_gold_accuracy: float | None = None,
    rotate: bool = False,
) -> AnnotationProject:
    """Turn the project's study link on for `platform` (or change its settings), or off with
    `platform=""`; and set the payment report's hourly rate and bonus bar, which apply with or
    without a link. The link gets a new secret token when it had none, or when `rotate`: the old
    link then lets no one in (participants already signed in work on until their session ends).
    Turning it off forgets the token; turning it on again makes a new link.

    Prolific without a completion URL gets Prolific's own (…/submissions/complete?cc=<code>);
    Mechanical Turk needs none (the page posts to the assignment's turkSubmitTo). Raises
    ValidationError (by field) for a bad value; nothing is changed then."""
    problems = _study_settings_problems(
        platform=platform,
        study_quota=study_quota,
        completion_code=completion_code,
        completion_url=completion_url,
        pay_per_hour=pay_per_hour,
        bonus_gold_accuracy=bonus_gold_accuracy,
    )
    if problems:
        raise ValidationError(problems)
    project = AnnotationProject.objects.select_for_update().get(pk=project.pk)
    if platform == StudyPlatform.PROLIFIC and not completion_url:
        completion_url = PROLIFIC_COMPLETION_URL.format(code=completion_code)
    elif platform == StudyPlatform.MTURK:
        completion_url = ""
    project.study_platform = platform
    if not platform:
        project.study_token = None
    elif rotate or not project.study_token:
        project.study_token = secrets.token_urlsafe(24)
    project.study_quota = study_quota
    project.completion_code = completion_code
    project.completion_url = completion_url
    project.pay_per_hour = None if pay_per_hour is None else Decimal(pay_per_hour)
    project.bonus_gold_accuracy = None if bonus_gold_accuracy is None else float(bonus_gold_accuracy)
    project.save(
        update_fields=[
            "study_platform",
            "study_token",
            "study_quota",
            "completion_code",
            "completion_url",
            "pay_per_hour",
            "bonus_gold_accuracy",
        ]
    )
    return project
