"""Fault tests on real processes (issue 8). Each one breaks something the production stack depends on
and checks that nothing is lost, duplicated or half-written, and that service resumes:

- a Celery worker killed mid-job: tests/generation/pipeline/test_worker_postgres.py;
- Redis restarted while jobs are queued, losing its queue (no persistence) or keeping it (AOF);
- the database connection of a request dropped in the middle of its transaction;
- an annotation lease abandoned by its worker.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings
from django.test import Client
from django.utils import timezone

from annotation.models import AnnotationProject, Assignment, ProjectItem, Response
from annotation.services.workers import worker_api_token
from generation.jobs.services import job_queue
from generation.jobs.tasks import run_job
from generation.models import Dataset, Example, Job
from mwe_site.celery import app
from tests.annotation.builders import build_project
from tests.annotation.invariants import check_invariants
from tests.builders import DatasetFactory, ExampleFactory, StaffFactory, WorkerFactory
from tests.processes import (
    RedisServer,
    database_url,
    production_env,
    start_gunicorn,
    start_worker,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

RATING = {"relevance": 4, "answer": " Yes", "ambiguous": False}


# ----------------------------------------------------------------------------- Redis restarts

QUEUES = ["default", "models"]


@pytest.fixture
def redis_server(tmp_path):
    """Makes a private redis-server (started); kills it at the end, after the workers have stopped."""
    servers = []

    def make(*, appendonly: bool) -> RedisServer:
        servers.append(RedisServer(tmp_path / "redis", appendonly=appendonly))
        servers[-1].start()
        return servers[-1]

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def workers(tmp_path):
    """Starts workers on demand; stops them all, and prints their logs' tails, at the end."""
    started = []

    def start(broker_url: str, name: str = "worker", **kwargs) -> Path:
        started.append(start_worker(tmp_path, name, broker_url=broker_url, queues=QUEUES, **kwargs))
        return tmp_path / f"{name}.log"

    yield start
    for process in started:
        stop_process(process)
    for log in tmp_path.glob("*.log"):
        print(f"--- {log.name}\n{log.read_text()[-2500:]}")


def import_file(tmp_path: Path, evals_data: Path, name: str, lines: slice) -> Path:
    """Some lines of a released file, in a folder of its own (an import job deletes its folder)."""
    source = (evals_data / "persona" / "narcissism.jsonl").read_text().splitlines(keepends=True)
    target = tmp_path / "uploads" / name / f"{name}.jsonl"
    target.parent.mkdir(parents=True)
    target.write_text("".join(source[lines]))
    return target


def import_params(path: Path) -> dict:
    return {"path": str(path), "filename": path.name, "slug": path.stem, "collection": None}


def queue_import(path: Path, broker_url: str, *, queued_since: timedelta) -> Job:
    """An import job whose message is in the broker, as job_create leaves it, queued for a while."""
    job = Job.objects.create(kind=Job.Kind.IMPORT, params=import_params(path))
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - queued_since)
    with app.connection_for_write(broker_url) as conn:
        run_job.apply_async((job.pk,), connection=conn, queue=job_queue(job.kind))
    return job


def manage(tmp_path: Path, broker_url: str, *args: str) -> str:
    """A management command in a process of its own, as cron or a web process would run it."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=production_env(tmp_path, "manage", broker_url=broker_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def status(job: Job) -> str:
    return Job.objects.get(pk=job.pk).status


def runs_of(job: Job, log: Path) -> int:
    return log.read_text().count(f"job {job.pk} ({job.kind}) started")


def test_queued_jobs_run_after_a_redis_restart_that_lost_them(
    tmp_path, evals_data, redis_server, workers, monkeypatch
):
    """Redis without persistence is killed while one job waits in its queue and restarted empty; a
    second job is created while it is down, so its message is never sent. A worker that connects
    sends the first one again (queued for ten minutes, its queue empty) and runs it; the second,
    younger than the two-minute grace, is left to the `requeue_jobs` cron command, which sends it.
    Each job runs once and imports its examples once."""
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    redis = redis_server(appendonly=False)
    early = queue_import(
        import_file(tmp_path, evals_data, "early", slice(0, 20)),
        redis.url,
        queued_since=timedelta(minutes=10),
    )
    assert redis.client().llen("default") == 1

    redis.kill()
    during_path = import_file(tmp_path, evals_data, "during", slice(20, 45))
    created = manage(
        tmp_path,
        redis.url,
        "shell",
        "-c",
        "from generation.jobs.services import job_create; "
        f"print('job', job_create(kind='import', params={import_params(during_path)!r}, created_by=None).pk)",
    )
    during = Job.objects.get(pk=int(re.search(r"^job (\d+)$", created, re.M).group(1)))
    assert "broker is unreachable" in created and status(during) == Job.Status.QUEUED

    redis.start()
    assert redis.client().dbsize() == 0  # the restart lost the queue
    log = workers(redis.url)
    started = time.monotonic()
    wait_for(lambda: status(early) == Job.Status.SUCCEEDED, seconds=90, what="the lost job", logs=[log])
    early_after = time.monotonic() - started
    assert status(during) == Job.Status.QUEUED  # too young for the worker's sweep

    # Minutes later cron runs the command; the job is past the grace by then.
    Job.objects.filter(pk=during.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    started = time.monotonic()
    assert "1 job sent again" in manage(tmp_path, redis.url, "requeue_jobs")
    wait_for(lambda: status(during) == Job.Status.SUCCEEDED, seconds=60, what="the unsent job", logs=[log])
    during_after = time.monotonic() - started

    assert f"sent again: queued jobs [{early.pk}]" in log.read_text()
    assert (runs_of(early, log), runs_of(during, log)) == (1, 1)
    assert (
        Dataset.objects.get(slug="early").example_count
        == Example.objects.filter(dataset__slug="early").count()
        == 20
    )
    assert (
        Dataset.objects.get(slug="during").example_count
        == Example.objects.filter(dataset__slug="during").count()
        == 25
    )
    print(
        f"lost job {early.pk} succeeded {early_after:.1f} s after its worker started; the job created "
        f"while Redis was down, {during.pk}, {during_after:.1f} s after requeue_jobs was started"
    )


def test_a_message_kept_by_aof_and_a_second_copy_run_the_job_once(
    tmp_path, evals_data, redis_server, workers, monkeypatch
):
    """Redis with AOF is killed and restarted with the job's message still queued. A second copy of the
    message, as a redelivery or a sweep can make, is queued beside it, and a worker with two pool
    processes takes both at once: the job runs once, the other copy finds it running or finished and
    does nothing."""
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    redis = redis_server(appendonly=True)
    job = queue_import(
        import_file(tmp_path, evals_data, "kept", slice(0, 1000)),
        redis.url,
        queued_since=timedelta(minutes=10),
    )
    redis.restart()
    assert redis.client().llen("default") == 1  # the message survived
    with app.connection_for_write(redis.url) as conn:
        run_job.apply_async((job.pk,), connection=conn, queue="default")
    log = workers(redis.url, pool=["--concurrency=2"])
    wait_for(lambda: status(job) == Job.Status.SUCCEEDED, seconds=90, what="the kept job", logs=[log])
    skipped = (
        f"job {job.pk} is running in another process; this copy of its message is dropped",
        f"job {job.pk} is finished or gone; nothing to do",
    )
    wait_for(
        lambda: any(line in log.read_text() for line in skipped), seconds=30, what="the copy", logs=[log]
    )
    wait_for(lambda: redis.client().llen("default") == 0, seconds=10, what="an empty queue", logs=[log])

    text = log.read_text()
    assert runs_of(job, log) == 1
    assert (
        Dataset.objects.get(slug="kept").example_count
        == Example.objects.filter(dataset__slug="kept").count()
        == 1000
    )
    print(
        "the copy:",
        "dropped while the job ran" if skipped[0] in text else "found the job finished",
        "; the worker's sweep:",
        re.findall(r"sent again: .*", text) or "sent nothing",
    )


def test_a_redis_restart_under_a_busy_worker_resends_the_waiting_job_not_the_running_one(
    tmp_path, evals_data, redis_server, workers, monkeypatch
):
    """The usual case: the workers stay up while Redis restarts. One worker (one pool process) is busy
    with an import, held inside it by a lock on the examples table; a second job waits behind it in
    the queue. Redis restarts without its queue; the worker reconnects, and its sweep sends the
    waiting job again but not the running one, whose worker is alive. Each job runs once."""
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    redis = redis_server(appendonly=False)
    log = workers(redis.url)
    with psycopg.connect(database_url()) as locker:
        locker.execute(f"LOCK TABLE {Example._meta.db_table} IN SHARE MODE")
        busy = queue_import(
            import_file(tmp_path, evals_data, "busy", slice(0, 30)), redis.url, queued_since=timedelta(0)
        )
        wait_for(lambda: status(busy) == Job.Status.RUNNING, seconds=60, what="the busy job", logs=[log])
        waiting = queue_import(
            import_file(tmp_path, evals_data, "waiting", slice(30, 50)),
            redis.url,
            queued_since=timedelta(minutes=10),
        )
        assert redis.client().llen("default") == 1

        redis.restart()
        wait_for(
            lambda: "sent again" in log.read_text(), seconds=30, what="the sweep on reconnection", logs=[log]
        )
        assert status(busy) == Job.Status.RUNNING
        locker.rollback()
    assert f"sent again: queued jobs [{waiting.pk}] (their queue lacked messages), running jobs []" in (
        log.read_text()
    )
    wait_for(
        lambda: status(waiting) == status(busy) == Job.Status.SUCCEEDED,
        seconds=60,
        what="both jobs",
        logs=[log],
    )
    assert (runs_of(busy, log), runs_of(waiting, log)) == (1, 1)
    assert Example.objects.filter(dataset__slug="busy").count() == 30
    assert Example.objects.filter(dataset__slug="waiting").count() == 20


# ----------------------------------------------------------------------------- the database drops


@pytest.fixture
def site(tmp_path):
    """gunicorn with one worker thread, so the request after the failure runs on the very thread whose
    connection was killed; persistent connections, as in production."""
    process, base = start_gunicorn(tmp_path, env={"GUNICORN_THREADS": "1", "DATABASE_CONN_MAX_AGE": "60"})
    yield base
    stop_process(process)
    print((tmp_path / "gunicorn.log").read_text()[-3000:])


@pytest.fixture
def locker():
    """A second database session, autocommit off: what it locks stays locked until it rolls back."""
    with psycopg.connect(database_url()) as conn:
        yield conn
        conn.rollback()


def blocked_backend(statement: str) -> int:
    """The pid of the backend waiting for a lock to run a statement that contains `statement`: the
    request's connection, stuck in the middle of its work."""

    def waiting():
        with psycopg.connect(database_url(), autocommit=True) as probe:
            row = probe.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE %s",
                [f"%{statement}%"],
            ).fetchone()
        return row[0] if row else None

    return wait_for(waiting, seconds=20, what=f"a request blocked on {statement!r}")


def backend_waiting_for_table(table: str) -> int:
    """The pid of the backend waiting for a lock on `table`. For a statement too long for
    pg_stat_activity's query text (track_activity_query_size, 1 kB by default), such as the one
    submit statement, whose insert comes after the answer check."""

    def waiting():
        with psycopg.connect(database_url(), autocommit=True) as probe:
            row = probe.execute(
                "SELECT pid FROM pg_locks WHERE NOT granted AND relation = to_regclass(%s)", [table]
            ).fetchone()
        return row[0] if row else None

    return wait_for(waiting, seconds=20, what=f"a request blocked on the table {table}")


def tables_written_by(pid: int) -> set[str]:
    with psycopg.connect(database_url(), autocommit=True) as probe:
        rows = probe.execute(
            "SELECT relation::regclass::text FROM pg_locks"
            " WHERE pid = %s AND mode = 'RowExclusiveLock' AND granted AND relation IS NOT NULL",
            [pid],
        ).fetchall()
    return {table for (table,) in rows}


def terminate(pid: int) -> None:
    with psycopg.connect(database_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


def staff_session() -> requests.Session:
    client = Client()
    client.force_login(StaffFactory(username="researcher"))
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    return session


def test_a_dropped_connection_mid_transaction_answers_503_and_leaves_nothing(site, locker, tmp_path):
    """The project form writes the project, its datasets, then its items in one transaction. The items'
    table is locked by another session, so the request stops after its first inserts; its backend is
    then terminated. The request gets a short 503 page with Retry-After, none of the rows it wrote
    exists, and the same request on the same server thread succeeds at once."""
    dataset = DatasetFactory(slug="power")
    ExampleFactory.create_batch(30, dataset=dataset)
    session = staff_session()
    form = session.get(f"{site}/annotate/projects/new/")
    assert form.status_code == 200, form.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    data = {
        "csrfmiddlewaretoken": token,
        "name": "Power",
        "slug": "power",
        "datasets": ["power"],
        "seed": 0,
        "overlap": 3,
        "lease_seconds": 300,
        "gold_rate": 0.0,
        "gold_threshold": 0.7,
    }
    post = lambda: session.post(f"{site}/annotate/projects/new/", data=data, allow_redirects=False)  # noqa: E731

    locker.execute(f"LOCK TABLE {ProjectItem._meta.db_table} IN SHARE MODE")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post)
        pid = blocked_backend(f'INSERT INTO "{ProjectItem._meta.db_table}"')
        written = tables_written_by(pid)
        # Half-way: the project and its datasets are inserted (uncommitted), its items are not.
        assert {
            AnnotationProject._meta.db_table,
            AnnotationProject.datasets.through._meta.db_table,
        } <= written
        started = time.monotonic()
        terminate(pid)
        response = pending.result(timeout=30)
    failed_in = time.monotonic() - started
    locker.rollback()

    assert response.status_code == 503, response.text[:500]
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in response.text and len(response.text) < 1000
    assert (
        "database unavailable during POST /annotate/projects/new/" in (tmp_path / "gunicorn.log").read_text()
    )
    assert not AnnotationProject.objects.exists()
    assert not AnnotationProject.datasets.through.objects.exists()
    assert not ProjectItem.objects.exists()

    again = post()
    assert again.status_code == 302, again.text[:500]
    project = AnnotationProject.objects.get(slug="power")
    assert again.headers["Location"].endswith(project.get_absolute_url())
    assert project.items.count() == 30
    print(f"503 {failed_in:.2f} s after the kill; the retry created {project.items.count()} items")


def test_a_dropped_connection_during_an_api_submit_answers_503_json(site, locker):
    """The submit statement counts the answer on the item, closes the lease and inserts the response.
    Killed while it waits for the responses table, it answers a JSON 503 with Retry-After; the lease
    is still open, the counters unchanged, and submitting again works."""
    project = build_project(items=1, overlap=1)
    worker = WorkerFactory(projects=[project])
    api = requests.Session()
    api.headers["Authorization"] = f"Token {worker_api_token(worker=worker)}"
    lease = api.post(f"{site}/api/tasks/next/", json={})
    assert lease.status_code == 200, lease.text
    assignment_id = lease.json()["id"]
    submit = lambda: api.post(f"{site}/api/assignments/{assignment_id}/submit/", json=RATING)  # noqa: E731

    locker.execute(f"LOCK TABLE {Response._meta.db_table} IN SHARE MODE")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(submit)
        terminate(backend_waiting_for_table(Response._meta.db_table))
        response = pending.result(timeout=30)
    locker.rollback()

    assert response.status_code == 503, response.text[:500]
    assert response.headers["Retry-After"] == "5"
    assert (
        response.json() == {"detail": response.json()["detail"]} and "try again" in response.json()["detail"]
    )
    assert Assignment.objects.get(pk=assignment_id).status == Assignment.Status.CLAIMED
    assert not Response.objects.exists()
    check_invariants(project)

    again = submit()
    assert again.status_code == 201, again.text
    assert Response.objects.get().assignment_id == assignment_id
    check_invariants(project)


# ----------------------------------------------------------------------------- abandoned leases


def test_an_abandoned_lease_returns_its_slot_and_can_no_longer_be_submitted(site):
    """A worker claims the only open slot over the HTTP API and goes away. While the lease runs, the
    other worker gets nothing; once it has expired the other worker gets that example, and the first
    worker's late submit is refused with 409 and stores nothing."""
    # The shortest lease a project may have; the test waits it out rather than move the lease's clock.
    project = build_project(items=1, overlap=1, lease_seconds=10)
    gone, other = WorkerFactory.create_batch(2, projects=[project])
    clients = {}
    for worker in (gone, other):
        clients[worker] = requests.Session()
        clients[worker].headers["Authorization"] = f"Token {worker_api_token(worker=worker)}"

    claimed = clients[gone].post(f"{site}/api/tasks/next/", json={})
    assert claimed.status_code == 200, claimed.text
    lease = claimed.json()
    assert clients[other].post(f"{site}/api/tasks/next/", json={}).status_code == 204

    expires_at = Assignment.objects.get(pk=lease["id"]).expires_at
    time.sleep(max(0.0, (expires_at - timezone.now()).total_seconds()) + 0.2)
    # Expiry is lazy: the slot is still reserved until a claim sweeps the lease.
    assert ProjectItem.objects.get().reserved_count == 1
    taken = clients[other].post(f"{site}/api/tasks/next/", json={})
    assert taken.status_code == 200, taken.text
    abandoned, retaken = Assignment.objects.get(pk=lease["id"]), Assignment.objects.get(pk=taken.json()["id"])
    assert (retaken.worker, retaken.item_id) == (other, abandoned.item_id)
    assert abandoned.status == Assignment.Status.EXPIRED

    late = clients[gone].post(f"{site}/api/assignments/{lease['id']}/submit/", json=RATING)
    assert late.status_code == 409, late.text
    assert not Response.objects.exists()
    done = clients[other].post(f"{site}/api/assignments/{taken.json()['id']}/submit/", json=RATING)
    assert done.status_code == 201, done.text
    assert clients[gone].post(f"{site}/api/tasks/next/", json={}).status_code == 204
    check_invariants(project)
    item = ProjectItem.objects.get()
    assert (item.submitted_count, item.reserved_count) == (1, 1)
