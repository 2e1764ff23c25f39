"""Background jobs: the one place that creates jobs, moves them through their states and records
their progress. Task bodies (generation.jobs.tasks) call these; views and commands never set a job's
status themselves.

What a job of each kind does lives with the part that owns the work (generation.catalog.jobs,
generation.evaluation.jobs, generation.pipeline.jobs, analysis.explorer.jobs); each app hands those
handlers to job_handler_register from its AppConfig.ready, so this module imports none of them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from celery import current_app
from celery.canvas import Signature
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from generation.models import EvaluationRun, EvaluationSuite, GenerationRun, Job

logger = logging.getLogger(__name__)


# Model work (generation, evaluation, embedding) has its own queue, so that only workers on machines
# with an accelerator, or near the model servers, take it (`celery worker -Q models`), while imports
# run anywhere.
MODEL_QUEUE = "models"
MODEL_JOB_KINDS = frozenset({Job.Kind.EVALUATE, Job.Kind.SUITE, Job.Kind.GENERATE, Job.Kind.EXPLORE})

# A lost database connection (a restart, a failover, a dropped network link, a terminated backend)
# is a transient failure: the same work succeeds once the database answers again.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# The kinds of job that go back to the queue after a transient failure: they can run again from the
# start, as an import can (each file is written in one transaction, and a file already written is
# found unchanged).
RETRIED_KINDS = frozenset({Job.Kind.IMPORT})


class JobInterrupted(Exception):
    """A job stopped by a transient failure before it could finish; it is queued (again) and may run
    again (generation.jobs.tasks.run_job retries it with a growing delay, a bounded number of times)."""


def job_retry_delay(*, attempt: int) -> float:
    """Seconds before an interrupted job's try number attempt+1: doubling from MWE_JOB_RETRY_SECONDS."""
    return settings.MWE_JOB_RETRY_SECONDS * 2**attempt


def job_queue(kind: str) -> str:
    """The Celery queue a job of this kind is sent to."""
    return MODEL_QUEUE if kind in MODEL_JOB_KINDS else settings.CELERY_TASK_DEFAULT_QUEUE


# The name the task that runs a job (generation.jobs.tasks.run_job) is registered under. Jobs are sent
# by this name, not through the task object, because the task module imports this one.
RUN_JOB_TASK = "generation.run_job"


def _run_job_task() -> Signature:
    # The registered task's own apply_async when this process has loaded it (every process that loads
    # Django: GenerationConfig.ready imports it), so task_always_eager still runs a job inline.
    return current_app.signature(RUN_JOB_TASK)


def _send(job: Job) -> None:
    try:
        _run_job_task().apply_async((job.pk,), queue=job_queue(job.kind))
    except BrokerUnavailable as exc:
        # The job is saved and stays queued: the next sweep (job_requeue_stale) sends it once the
        # broker answers again. Failing the request would not undo the committed job.
        logger.warning(
            "job %s is saved but the broker is unreachable, so it waits for a sweep: %s", job.pk, exc
        )


def _enqueue(job: Job) -> None:
    # Only after the job row is committed, or a fast worker could look for it before it exists.
    transaction.on_commit(lambda: _send(job))


def job_create(*, kind: str, params: dict[str, Any], created_by: AbstractBaseUser | None) -> Job:
    if kind not in Job.Kind.values:
        raise ValueError(f"unknown job kind {kind!r}")
    with transaction.atomic():
        job = Job.objects.create(kind=kind, params=params, created_by=created_by)
        _enqueue(job)
    return job


def job_start(*, job_id: int) -> Job | None:
    """Marks a queued job running; returns None when it is already finished (a redelivered task
    message must not run finished work again)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        job.status = Job.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])
    return job


def job_progress(*, job: Job, done: int, total: int | None = None, message: str = "") -> None:
    updates: dict[str, Any] = {"progress_done": done}
    if total is not None:
        updates["progress_total"] = total
    if message:
        updates["message"] = message
    Job.objects.filter(pk=job.pk).update(**updates)
    for name, value in updates.items():
        setattr(job, name, value)


def job_finish(*, job: Job, result: dict[str, Any], message: str = "") -> None:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        result=result,
        message=message,
        # A job that never learnt its total keeps the count it reached.
        progress_done=Coalesce(F("progress_total"), F("progress_done")),
        finished_at=timezone.now(),
    )


def job_fail(*, job: Job, error: str, result: dict[str, Any] | None = None) -> None:
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error=error, result=result or {}, finished_at=timezone.now()
    )


def job_create_for_run(
    *, kind: str, run: EvaluationRun | GenerationRun, created_by: AbstractBaseUser | None
) -> Job:
    """Queues the job that carries out a run, and links the run to it, in one transaction."""
    with transaction.atomic():
        job = job_create(kind=kind, params={"run_id": run.pk}, created_by=created_by)
        run.job = job
        run.save(update_fields=["job"])
    return job


def job_cancel(*, job: Job) -> None:
    """Asks a running job to stop; it does so at its next checkpoint (its handler asks
    generation.jobs.selectors.job_cancel_requested). A queued one stops at once, and so does the run
    it would have carried out: no handler will ever start (job_start skips a finished job), so
    without this the run would read "Queued" on every page for ever."""
    now = timezone.now()
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        stopped = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELLED, finished_at=now
        )
        if stopped:
            # A suite's runs are carried out by the suite's job, not by jobs of their own.
            for runs in (
                GenerationRun.objects.filter(job=job),
                EvaluationRun.objects.filter(job=job),
                EvaluationRun.objects.filter(suite__job=job),
                EvaluationSuite.objects.filter(job=job),
            ):
                runs.filter(status=Job.Status.QUEUED).update(status=Job.Status.CANCELLED, finished_at=now)


def job_cancelled(*, job: Job) -> None:
    """Records that a running job stopped at a checkpoint because it was asked to (job_cancel)."""
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED, finished_at=timezone.now())


# ----------------------------------------------------------------------------- handlers

# What each kind of job does, and what to tidy once one has failed for good (a handler tidies after
# itself once it has recorded an outcome). Filled by job_handler_register only.
JOB_HANDLERS: dict[str, Callable[[Job], None]] = {}
JOB_CLEANUPS: dict[str, Callable[[Job], None]] = {}


def job_handler_register(
    *, kind: str, handler: Callable[[Job], None], cleanup: Callable[[Job], None] | None = None
) -> None:
    """Plugs in what a kind of job does (and what to tidy if it fails for good); each app calls this
    from its AppConfig.ready for the kinds it owns, so that every process that loads Django knows
    them and this module imports none of them."""
    if kind not in Job.Kind.values:
        raise ValueError(f"unknown job kind {kind!r}")
    JOB_HANDLERS[kind] = handler
    if cleanup is None:
        JOB_CLEANUPS.pop(kind, None)
    else:
        JOB_CLEANUPS[kind] = cleanup


def job_run(*, job_id: int) -> None:
    """Runs a job to completion on this process; what a Celery task body calls. A job's message can
    arrive more than once (redelivered after a worker died, sent again by job_requeue_stale): a copy
    that finds the job running in another live process, or finished, does nothing.

    A lost database connection raises JobInterrupted, which the task retries, when none of the job's
    work had begun (taking its lock, marking it running), whatever its kind, or at any point of a
    kind that can run again from the start (RETRIED_KINDS)."""
    began = False
    try:
        with _job_lock(job_id) as acquired:
            if not acquired:
                logger.info(
                    "job %s is running in another process; this copy of its message is dropped", job_id
                )
                return
            job = job_start(job_id=job_id)
            if job is None:
                logger.info("job %s is finished or gone; nothing to do", job_id)
                return
            logger.info("job %s (%s) started", job_id, job.kind)
            began = True
            try:
                JOB_HANDLERS[job.kind](job)
            except Exception as exc:
                if job.kind in RETRIED_KINDS and isinstance(exc, TRANSIENT_ERRORS):
                    reason = _interruption(exc)
                    logger.warning("job %s was interrupted and goes back to the queue: %s", job_id, reason)
                    _job_requeue(job=job, reason=reason)
                    raise JobInterrupted(reason) from exc
                logger.exception("job %s failed", job_id)
                job_fail(job=job, error=f"{type(exc).__name__}: {exc}")
                _job_cleanup(job)
                raise
    except TRANSIENT_ERRORS as exc:
        if began:
            raise
        reason = _interruption(exc)
        logger.warning("job %s could not start and goes back to the queue: %s", job_id, reason)
        _connection_drop()
        raise JobInterrupted(reason) from exc
    _queue_follow_up(job)


def _interruption(exc: Exception) -> str:
    # The driver's message without the statement it interrupted (its next lines).
    first_line = next(iter(str(exc).strip().splitlines()), "")
    return f"{type(exc).__name__}: {first_line}"


def _connection_drop() -> None:
    # The connection a transient error broke; the next query opens a new one. Closing a broken
    # connection can fail too, which changes nothing.
    with contextlib.suppress(DatabaseError):
        connection.close()


def _job_cleanup(job: Job) -> None:
    cleanup = JOB_CLEANUPS.get(job.kind)
    if cleanup is not None:
        cleanup(job)


def _job_requeue(*, job: Job, reason: str) -> None:
    """Marks an interrupted job queued again, on a new connection: the one that failed is dropped.
    If the database is still away, the job stays marked running; that changes nothing for its retry
    (job_start takes a running job whose lock nobody holds), nor for a sweep, which sends it again."""
    _connection_drop()
    try:
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.QUEUED, message=f"Interrupted ({reason[:200]}); it will run again"
        )
    except TRANSIENT_ERRORS as exc:
        logger.warning("job %s could not be marked queued again: %s", job.pk, exc)
        _connection_drop()


def job_give_up(*, job_id: int, error: str, tries: int) -> None:
    """Fails for good a job interrupted `tries` times (its retries are used up) and tidies after it
    (an import's upload is deleted). Nothing happens if another process is running the job (a copy
    of its message) or it has finished meanwhile."""
    with _job_lock(job_id) as acquired:
        job = Job.objects.filter(pk=job_id).first() if acquired else None
        if job is None or job.is_finished:
            return
        job_fail(job=job, error=f"Interrupted {tries} times, the last by {error}; not retried again")
        _job_cleanup(job)


def _queue_follow_up(job: Job) -> None:
    """A job's params may name a job to queue once it has succeeded, {"then": {"kind", "params"}}:
    load_demo's generation is followed by the explorer build that maps the dataset it wrote."""
    follow_up = job.params.get("then")
    if not isinstance(follow_up, dict) or follow_up.get("kind") not in Job.Kind.values:
        return
    if Job.objects.filter(pk=job.pk, status=Job.Status.SUCCEEDED).exists():
        job_create(kind=follow_up["kind"], params=follow_up.get("params") or {}, created_by=job.created_by)


# ----------------------------------------------------------------------------- lost messages

# The first key of the PostgreSQL advisory lock a process holds while it runs a job (the second is the
# job's id): a constant no other code uses.
JOB_LOCK_KEY = 0x4A4F42
# How old a queued job must be before a sweep may send it again: a younger one's message may still be
# on its way (sent when its transaction commits). A copy costs one query when it arrives, nothing more.
REQUEUE_AFTER = timedelta(minutes=2)
# The lock that one sweep at a time holds: no job has id 0.
SWEEP_LOCK_ID = 0


@contextlib.contextmanager
def _job_lock(job_id: int) -> Iterator[bool]:
    """Holds, while the body runs, the lock that says "a live process is running this job"; yields
    whether it got it. It goes when its holder dies: on PostgreSQL it is an advisory lock of a database
    session of its own, which the server ends as soon as the dead process's connection closes, on
    whatever machine; on SQLite (one machine) it is a flock on a file under VAR_DIR, which the kernel
    releases."""
    if connection.vendor == "postgresql":
        session = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with session.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_lock(%s::integer, %s::integer)", [JOB_LOCK_KEY, job_id]
                )
                (acquired,) = cursor.fetchone()
            yield acquired
        finally:
            session.close()
        return
    folder = Path(settings.VAR_DIR) / "job-locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{job_id}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            acquired = False
        else:
            acquired = True
        yield acquired


def _jobs_locked(job_ids: Iterable[int]) -> set[int]:
    """Which of these jobs a live process is running (holds the lock of)."""
    job_ids = set(job_ids)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid::bigint = %s AND objsubid = 2",
                [JOB_LOCK_KEY],
            )
            return {job_id for (job_id,) in cursor.fetchall()} & job_ids
    locked = set()
    for job_id in job_ids:
        with _job_lock(job_id) as acquired:
            if not acquired:
                locked.add(job_id)
    return locked


def _messages_waiting(conn, queue: str) -> int:
    try:
        return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
    except conn.channel_errors:
        return 0  # no such queue: Redis deletes an empty list (and a restart without persistence, all)


def job_requeue_stale(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Sends again the task message of the jobs whose message the broker may have lost; returns how
    many it sent. A Redis without persistence loses its queues when it restarts, and a job created
    while the broker was unreachable was never sent. Sent again are:

    - queued jobs created `older_than` ago or more, when their queue holds fewer messages than it has
      queued jobs: some message is missing, and which one cannot be told, so all of them are sent
      (the others get a duplicate). A queue that holds enough messages is left alone, so a long
      backlog is not copied at every sweep;
    - running jobs whose lock no process holds: their worker died, and the broker may have lost its
      unacknowledged message (if not, it redelivers it after the visibility timeout too).

    A job that a live worker is running is never sent: that worker holds its lock. And any copy is
    harmless: `job_run` runs a job only while holding its lock, and never once it is finished. Copies
    waiting in a queue can hide a loss from the count until the workers have taken them; a later sweep
    then finds it. One sweep runs at a time; another that starts meanwhile returns 0 at once.

    Workers call this whenever they (re)connect to the broker (mwe_site.celery.RequeueLostJobs);
    the `requeue_jobs` command does it from cron."""
    with _job_lock(SWEEP_LOCK_ID) as acquired:
        if not acquired:
            # Another sweep is running (all the workers reconnect at once after a broker restart);
            # a second one at the same moment would only send the same jobs twice.
            logger.info("another process is looking for lost jobs; not this one")
            return 0
        return _requeue_stale(cutoff=(now or timezone.now()) - older_than)


def _requeue_stale(*, cutoff: datetime) -> int:
    waiting_jobs: Counter[str] = Counter()
    stale: dict[str, list[Job]] = defaultdict(list)
    for job in Job.objects.filter(status=Job.Status.QUEUED).only("pk", "kind", "created_at").order_by("pk"):
        waiting_jobs[job_queue(job.kind)] += 1
        if job.created_at <= cutoff:
            stale[job_queue(job.kind)].append(job)
    running = list(Job.objects.filter(status=Job.Status.RUNNING).only("pk", "kind").order_by("pk"))
    locked = _jobs_locked(job.pk for job in running)
    orphans = [job for job in running if job.pk not in locked]
    if not stale and not orphans:
        return 0

    with current_app.connection_for_write() as conn:
        lost = [
            job
            for queue, jobs in stale.items()
            if _messages_waiting(conn, queue) < waiting_jobs[queue]
            for job in jobs
        ]
        task = _run_job_task()
        for job in lost + orphans:
            task.apply_async((job.pk,), queue=job_queue(job.kind), connection=conn)
    if lost or orphans:
        logger.warning(
            "sent again: queued jobs %s (their queue lacked messages), running jobs %s (no live worker)",
            [job.pk for job in lost],
            [job.pk for job in orphans],
        )
    return len(lost) + len(orphans)
