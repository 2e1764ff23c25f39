"""Writes of crowdworkers: creation, invite links and their sessions, API tokens, exclusion (by a
researcher, or by the project's gold rule)."""

from __future__ import annotations

from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import (
    AnnotationProject,
    Assignment,
    Worker,
    WorkerSession,
    external_id_problem,
    new_invite_expiry,
    new_invite_token,
    validate_external_id,
)
from annotation.selectors import worker_fails_gold, worker_gold_accuracy
from annotation.services.errors import InviteExpired
from annotation.services.leases import assignments_end_live


@transaction.atomic
def worker_create(
    *, project: AnnotationProject, external_id: str = "", user: AbstractBaseUser | None = None
) -> Worker:
    """A worker of `project` with an invite link valid for MWE_INVITE_TTL_DAYS. Raises
    ValidationError for an external id with surrounding whitespace or invisible characters."""
    validate_external_id(external_id)
    worker = Worker.objects.create(external_id=external_id, user=user)
    worker.projects.add(project)
    return worker


def worker_external_ids_parse(*, text: str, count: int, source: str = "") -> list[str]:
    """The external ids of `count` new workers from `text`, one id per line, exactly as written:
    an id with surrounding whitespace or an invisible character is refused (it would merge with
    another id, or pass for one), naming its line. Empty lines are skipped; Windows line ends are
    read as line ends. Raises ValidationError listing every
    problem (each prefixed with `source`, e.g. a file name). Shared by create_workers and the
    project page, so both refuse the same ids."""
    prefix = f"{source}, " if source else ""
    ids, errors = [], []
    # Split on "\n" alone, so a stray carriage return inside a line is seen (and refused).
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line:
            continue
        problem = external_id_problem(line)
        if problem is not None:
            errors.append(f"{prefix}line {number}: {line!r} {problem}")
        ids.append(line)
    if errors:
        raise ValidationError(errors)
    if len(ids) != count:
        raise ValidationError(f"{source or 'the list'} has {len(ids)} ids, the count is {count}")
    if len(set(ids)) != len(ids):
        raise ValidationError(f"{source or 'the list'} repeats an id")
    return ids


def workers_create(*, project: AnnotationProject, external_ids: list[str]) -> list[Worker]:
    """One new worker of `project` per external id ("" for none), all or none of them. Raises
    ValidationError for an id that another invited worker already has."""
    taken = sorted(
        Worker.objects.filter(platform="", external_id__in=[i for i in external_ids if i]).values_list(
            "external_id", flat=True
        )
    )
    if taken:
        raise ValidationError(f"already a worker's external id: {', '.join(map(repr, taken))}")
    try:
        with transaction.atomic():
            return [worker_create(project=project, external_id=external_id) for external_id in external_ids]
    except IntegrityError:
        # Taken meanwhile, by a request racing this one.
        raise ValidationError("an external id was taken meanwhile; nothing was created") from None


def worker_account(worker: Worker) -> Worker:
    """The worker's site account, made on first use (no password: the invite link is how they sign
    in, or a study link). Call with the worker's row locked."""
    if worker.user_id is None:
        user_model = get_user_model()
        user = user_model(username=f"worker-{worker.pk}")
        user.set_unusable_password()
        user.save()
        worker.user = user
        worker.save(update_fields=["user"])
    return worker


@transaction.atomic
def worker_join(*, invite_token: str, now=None) -> Worker | None:
    """Onboarding through an invite link: the worker, with their site account. None when no worker
    has this token (unknown, rotated or revoked); InviteExpired when the link is past its expiry."""
    worker = Worker.objects.select_for_update().filter(invite_token=invite_token).first()
    if worker is None:
        return None
    if worker.invite_expires_at is None or worker.invite_expires_at <= (now or timezone.now()):
        raise InviteExpired("this invite link has expired")
    return worker_account(worker)


def worker_api_token(*, worker: Worker) -> str:
    """The worker's API token (DRF token auth), created with their account if needed."""
    if worker.user_id is None:
        with transaction.atomic():
            worker = worker_account(Worker.objects.select_for_update().get(pk=worker.pk))
    token, _ = Token.objects.get_or_create(user=worker.user)
    return token.key


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _end_sessions(sessions) -> None:
    """Delete these WorkerSession rows and their sessions from the session store."""
    store = _session_store()
    for key in list(sessions.values_list("session_key", flat=True)):
        store().delete(key)
    sessions.delete()


@transaction.atomic
def worker_session_register(*, worker: Worker, session_key: str) -> None:
    """Record a session that the worker's invite link has just signed in, and end their oldest
    ones beyond what their projects allow (the smallest `max_sessions_per_worker` of them; 1 when
    they have none). Ending, not refusing: a worker who moved to another browser gets in, and
    whoever else held the link is signed out."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    limits = worker.projects.values_list("max_sessions_per_worker", flat=True)
    allowed = min(limits, default=1)
    WorkerSession.objects.update_or_create(session_key=session_key, defaults={"worker": worker})
    keep = list(worker.sessions.order_by("-created_at", "-pk").values_list("pk", flat=True)[:allowed])
    _end_sessions(worker.sessions.exclude(pk__in=keep))


def _end_every_session(worker: Worker) -> None:
    _end_sessions(worker.sessions.all())
    # Sessions not recorded (made before invite sessions were, or by a session engine that cannot
    # delete one, such as signed cookies) end too: a new unusable password changes the account's
    # session hash, which Django checks on every request. Never for an account with a password.
    if worker.user_id is not None and not worker.user.has_usable_password():
        worker.user.set_unusable_password()
        worker.user.save(update_fields=["password"])


@transaction.atomic
def worker_invite_rotate(*, worker: Worker) -> Worker:
    """A new invite link for the worker, valid for MWE_INVITE_TTL_DAYS: the old one stops working
    and every browser it signed in is signed out. Their API token is left as it is."""
    return _invite_replace(worker=worker, expires_at=new_invite_expiry())


def _invite_replace(*, worker: Worker, expires_at) -> Worker:
    """A new invite token (the old link dies) valid until `expires_at` (None: no link works), and
    every browser the worker signed in is signed out. Inside the caller's transaction."""
    worker = Worker.objects.select_for_update(of=("self",)).select_related("user").get(pk=worker.pk)
    worker.invite_token = new_invite_token()
    worker.invite_expires_at = expires_at
    worker.save(update_fields=["invite_token", "invite_expires_at"])
    _end_every_session(worker)
    return worker


@transaction.atomic
def worker_invite_revoke(*, worker: Worker) -> Worker:
    """Cut the worker off: their invite link stops working (until rotated), every browser it signed
    in is signed out and their API token is deleted. Their responses stay."""
    # A new secret that nobody is given, so the old link is unknown rather than merely expired.
    worker = _invite_replace(worker=worker, expires_at=None)
    if worker.user_id is not None:
        Token.objects.filter(user_id=worker.user_id).delete()
    return worker


@transaction.atomic
def worker_set_excluded(*, worker: Worker, excluded: bool, reason: str = "") -> Worker:
    """Exclude a worker or take them back; nothing is deleted either way."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.excluded = excluded
    worker.excluded_reason = reason if excluded else ""
    worker.excluded_at = timezone.now() if excluded else None
    worker.save(update_fields=["excluded", "excluded_reason", "excluded_at"])
    if excluded:
        # Their open leases return to the pool at once rather than at expiry.
        assignments_end_live(
            assignments=Assignment.objects.filter(worker=worker),
            status=Assignment.Status.RELEASED,
            now=timezone.now(),
        )
    return worker


def worker_flag_below_threshold(*, project: AnnotationProject) -> list[Worker]:
    """Exclude the project's workers whose gold accuracy is below the project's threshold after at
    least `gold_min_answers` gold answers. Returns those excluded now (reversible by
    `worker_set_excluded(excluded=False)`). The rule is `selectors.worker_fails_gold`."""
    flagged = []
    for worker_id, (correct, total) in worker_gold_accuracy(project=project).items():
        if not worker_fails_gold(project=project, right=correct, total=total):
            continue
        worker = Worker.objects.get(pk=worker_id)
        if not worker.excluded:
            reason = f"gold accuracy {correct}/{total} below {project.gold_threshold:.0%} on {project.slug}"
            flagged.append(worker_set_excluded(worker=worker, excluded=True, reason=reason))
    return flagged
