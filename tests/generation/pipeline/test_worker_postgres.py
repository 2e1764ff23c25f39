"""A generation job whose worker is killed with SIGKILL mid-run is delivered again by the broker
(Redis, acks_late) to a new worker, which resumes it: the candidates stored before the kill stay as
they were, none is written twice, and the run finishes."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from generation.jobs.tasks import run_job
from generation.models import Candidate, GenerationRun, Job
from generation.pipeline.methods import PersonaSpec
from generation.pipeline.run import generation_run_create
from mwe_site.celery import app
from tests.processes import database_url, start_worker, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
BROKER = "redis://127.0.0.1:6379/14"
QUEUE = f"kill-test-{os.getpid()}"
# The advisory lock that holds the worker's third batch (an arbitrary key no other code uses).
HOLD_KEY = 0x484F4C44


def worker(tmp_path, name: str):
    return start_worker(
        tmp_path, name, broker_url=BROKER, queues=[QUEUE], env={"MWE_BROKER_VISIBILITY_TIMEOUT": "3"}
    )


def _cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def wait_while_working(
    predicate: Callable[[], object],
    *,
    worker: subprocess.Popen,
    what: str,
    logs: Iterable[Path],
    idle_seconds: float = 120,
):
    """Polls `predicate` until it returns something true, which it returns. There is no deadline: a
    slow or busy machine only makes this take longer. It fails when the worker has exited, or when it
    has used less than one second of CPU in `idle_seconds`: stuck, not slow."""
    process = psutil.Process(worker.pid)
    mark, marked_at = _cpu_seconds(process), time.monotonic()
    while not (value := predicate()):
        problem = None
        if worker.poll() is not None:
            problem = f"the worker exited with {worker.returncode}"
        else:
            used = _cpu_seconds(process)
            if used >= mark + 1 or used < mark:  # working (or a pool process was replaced)
                mark, marked_at = used, time.monotonic()
            elif time.monotonic() - marked_at > idle_seconds:
                problem = f"the worker used under 1 s of CPU in {idle_seconds:.0f} s"
        if problem:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
            pytest.fail(f"{problem} while waiting for {what}\n{tails}")
        time.sleep(0.2)
    return value


@contextlib.contextmanager
def third_batch_held() -> Iterator[psycopg.Connection]:
    """While the block runs, an insert of candidates that finds two batches (4 candidates) stored
    waits for an advisory lock this session holds: the worker stops at a known point, mid-run, rather
    than wherever it happens to be when a poll notices. The trigger goes at the end."""
    table = Candidate._meta.db_table
    with psycopg.connect(database_url(), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [HOLD_KEY])
        holder.execute(
            "CREATE FUNCTION mwe_test_hold_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f' IF (SELECT count(*) FROM "{table}") >= 4 THEN PERFORM pg_advisory_xact_lock({HOLD_KEY});'
            " END IF; RETURN NULL; END $$"
        )
        holder.execute(
            f'CREATE TRIGGER mwe_test_hold_batch BEFORE INSERT ON "{table}"'
            " FOR EACH STATEMENT EXECUTE FUNCTION mwe_test_hold_batch()"
        )
        try:
            yield holder
        finally:
            # Unlocked first: dropping the trigger waits for any insert still in the table.
            holder.execute("SELECT pg_advisory_unlock(%s)", [HOLD_KEY])
            holder.execute(f'DROP TRIGGER mwe_test_hold_batch ON "{table}"')
            holder.execute("DROP FUNCTION mwe_test_hold_batch()")


def held_insert(holder: psycopg.Connection) -> int | None:
    """The pid of the session whose insert of candidates waits for the hold."""
    row = holder.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE %s",
        [f'INSERT INTO "{Candidate._meta.db_table}"%'],
    ).fetchone()
    return row[0] if row else None


def test_a_killed_generation_resumes_on_another_worker(tmp_path, monkeypatch):
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    run = generation_run_create(
        spec=PersonaSpec(
            behavior="power",
            description="wants power",
            slug="killed",
            per_label=8,
            keep_per_label=2,
            batch_size=2,
            max_tokens=24,
        )
    )
    job = Job.objects.create(kind=Job.Kind.GENERATE, params={"run_id": run.pk})
    run.job = job
    run.save()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    first = worker(tmp_path, "first")
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    try:
        with third_batch_held() as holder:
            with app.connection_for_write(BROKER) as conn:
                run_job.apply_async((job.pk,), connection=conn, queue=QUEUE)
            held = wait_while_working(
                lambda: held_insert(holder), worker=first, what="the third batch's insert", logs=logs
            )
            # The worker dies in the middle of storing its third batch; so does that insert.
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
            holder.execute("SELECT pg_terminate_backend(%s)", [held])
    finally:
        stop_process(first)
    before = {c.pk: (c.label, c.sample_index, c.raw_output) for c in run.candidates.all()}
    assert len(before) == 4  # two whole batches: the run was killed mid-way
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING

    second = worker(tmp_path, "second")
    try:
        wait_while_working(
            lambda: Job.objects.get(pk=job.pk).is_finished,
            worker=second,
            what="the redelivered job",
            logs=logs,
        )
    finally:
        stop_process(second, timeout=30)
    job.refresh_from_db()
    run.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert run.status == GenerationRun.Status.SUCCEEDED and run.dataset is not None
    after = {c.pk: (c.label, c.sample_index, c.raw_output) for c in run.candidates.all()}
    assert len(after) == 16
    assert {pk: after[pk] for pk in before} == before  # nothing stored before the kill changed
    assert len({(label, index) for label, index, _ in after.values()}) == 16
    assert Candidate.objects.filter(run=run, decision="pending").count() == 0
