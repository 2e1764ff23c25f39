"""What only a real PostgreSQL server can show: constraints enforced by the database, two processes
importing the same file at once, and jsonb (which reorders keys) still exporting the exact bytes."""

import hashlib
import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from generation.catalog.services import collection_get_or_create
from generation.jobs.services import job_queue
from generation.jobs.tasks import run_job
from generation.models import Collection, Dataset, Example, Job
from mwe_site.celery import app
from tests.builders import DatasetFactory, ExampleFactory
from tests.processes import RedisServer, database_url, start_worker, stop_process, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PERSONA_FILE = "persona/no-shut-down.jsonl"
WINOGENDER_FILE = "winogenerated/winogenerated_examples.jsonl"
OCCUPATIONS_FILE = "winogenerated/winogenerated_occupations.jsonl"


def test_position_is_unique_per_dataset_in_the_database():
    dataset = DatasetFactory()
    twins = [ExampleFactory.build(dataset=dataset, position=7) for _ in range(2)]
    with pytest.raises(IntegrityError), transaction.atomic():
        Example.objects.bulk_create(twins)
    assert Example.objects.count() == 0

    # The same position in another dataset is fine.
    other = DatasetFactory()
    Example.objects.bulk_create([twins[0], ExampleFactory.build(dataset=other, position=7)])
    assert Example.objects.filter(position=7).count() == 2


@pytest.mark.parametrize("confidence", [1.5, -0.1])
def test_label_confidence_range_is_checked_by_the_database(confidence):
    dataset = DatasetFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Example.objects.bulk_create([ExampleFactory.build(dataset=dataset, label_confidence=confidence)])
    assert Example.objects.count() == 0
    Example.objects.bulk_create([ExampleFactory.build(dataset=dataset, label_confidence=1.0)])
    assert Example.objects.count() == 1


def test_source_sha256_is_unique_in_the_database():
    DatasetFactory(source_sha256="a" * 64)
    DatasetFactory(source_sha256="")
    DatasetFactory(source_sha256="")  # blank is not a file, so it may repeat
    with pytest.raises(IntegrityError), transaction.atomic():
        DatasetFactory(source_sha256="a" * 64)


def _waiting_on(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            [table],
        )
        return cursor.fetchone()[0]


def test_two_processes_importing_the_same_file_at_once_keep_one_copy(evals_data):
    """Both processes are held at their first query until both wait, then let go together, so both
    find no dataset and both try to write it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "MWE_EVALS_DATA": str(evals_data),
    }
    manage = Path(settings.BASE_DIR) / "manage.py"
    command = [sys.executable, str(manage), "import_evals", str(evals_data / PERSONA_FILE)]
    table = Dataset._meta.db_table

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        processes = [
            subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while _waiting_on(table) < 2:
                exited = [p for p in processes if p.poll() is not None]
                assert not exited, [p.communicate() for p in exited]
                assert time.monotonic() < deadline, "the two imports never reached the database"
                time.sleep(0.05)
        except BaseException:
            for process in processes:
                process.kill()
            raise
    # Leaving the block commits and releases the lock: both go at the same moment.
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    statuses = sorted(out.split()[0] for out, _ in outputs)
    assert statuses == ["imported", "unchanged"], outputs
    assert Dataset.objects.count() == 1
    dataset = Dataset.objects.get()
    assert dataset.slug == "no-shut-down"
    assert Example.objects.count() == 1000 == dataset.example_count
    assert Collection.objects.count() == 1
    assert dataset.label_counts == {" No": 500, " Yes": 500}


def _waiting_backends() -> int:
    """Sessions of this database waiting for a lock (a table's, or another transaction's row)."""
    with connection.cursor() as cursor:
        # Inside a transaction, pg_stat_activity is read once and kept; this reads it afresh.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("replace", [False, True], ids=["plain", "replace"])
def test_two_different_files_with_one_slug_imported_at_once_act_as_one_after_the_other(
    evals_data, tmp_path, replace
):
    """a/power.jsonl and b/power.jsonl, different files with the same derived slug, are imported by two
    processes at the same moment. The examples table is locked until both have written their dataset
    row (uncommitted): one waits on the lock, the other on the first one's row under the unique slug.
    Then the lock goes. The second used to die of an uncaught IntegrityError; now it does what an
    import after the first does: an error naming the slug (nothing written), or with --replace, a
    replacement."""
    lines = (evals_data / PERSONA_FILE).read_text().splitlines(keepends=True)
    files = []
    for folder, part in [("a", lines[:100]), ("b", lines[100:250])]:
        (tmp_path / folder).mkdir()
        files.append(tmp_path / folder / "power.jsonl")
        files[-1].write_text("".join(part))
    collection_get_or_create(slug="imported")  # so that only the dataset row is contended
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "MWE_EVALS_DATA": str(evals_data),
    }
    manage = Path(settings.BASE_DIR) / "manage.py"
    options = ["--replace"] if replace else []

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{Example._meta.db_table}" IN SHARE MODE')
        processes = [
            subprocess.Popen(
                [sys.executable, str(manage), "import_evals", str(path), *options],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in files
        ]
        try:
            # No deadline of its own: a slow machine only takes longer to get there.
            while _waiting_backends() < 2:
                exited = [p for p in processes if p.poll() is not None]
                assert not exited, [p.communicate() for p in exited]
                time.sleep(0.05)
        except BaseException:
            for process in processes:
                process.kill()
            raise
    outputs = [process.communicate(timeout=300) for process in processes]
    codes = [p.returncode for p in processes]

    assert "Traceback" not in "".join(err for _, err in outputs), outputs
    dataset = Dataset.objects.get()
    assert dataset.slug == "power"
    sizes = {tmp_path / "a" / "power.jsonl": 100, tmp_path / "b" / "power.jsonl": 150}
    if replace:
        assert codes == [0, 0], outputs
        assert sorted(out.split()[0] for out, _ in outputs) == ["imported", "replaced"], outputs
        last = next(path for path, (out, _) in zip(files, outputs, strict=True) if out.startswith("replaced"))
    else:
        assert sorted(codes) == [0, 1], outputs
        last = files[codes.index(0)]
        _, err = outputs[codes.index(1)]
        assert "a dataset with slug 'power' already exists with different content" in err, outputs
    assert Example.objects.count() == sizes[last] == dataset.example_count
    assert dataset.source_sha256 == hashlib.sha256(last.read_bytes()).hexdigest()
    print(
        *(
            f"exit {code}: {out.strip()} {err.strip()}"
            for code, (out, err) in zip(codes, outputs, strict=True)
        )
    )


@pytest.mark.parametrize("relative", [PERSONA_FILE, WINOGENDER_FILE, OCCUPATIONS_FILE])
def test_jsonb_key_order_does_not_change_the_export(evals_data, tmp_path, relative):
    source = evals_data / relative
    call_command("import_evals", str(source), stdout=StringIO(), stderr=StringIO())
    dataset = Dataset.objects.get()

    if relative == OCCUPATIONS_FILE:
        # jsonb hands back the keys of extra in its own order (shortest first), not the file's ...
        first = Example.objects.get(dataset=dataset, position=0)
        assert dataset.field_order[0] == "BLS_original_occupation"
        assert set(first.extra) == set(dataset.field_order)
        assert list(first.extra) != dataset.field_order
        assert first.key_order is None

    # ... and the export still writes the file's bytes.
    out = tmp_path / "out.jsonl"
    call_command("export_evals", "--dataset", dataset.slug, "--out", str(out), stderr=StringIO())
    assert out.read_bytes() == source.read_bytes()


# ----------------------------------------------------------------------------- upload imports that lose the database


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """Starts a Celery worker on the default queue of a private Redis, with these settings; stops it
    (and the Redis) at the end, printing its log's tail."""
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    redis = RedisServer(tmp_path / "redis", appendonly=False)
    redis.start()
    started = []

    def start(**env: str) -> tuple[str, Path]:
        started.append(start_worker(tmp_path, "worker", broker_url=redis.url, queues=["default"], env=env))
        return redis.url, tmp_path / "worker.log"

    yield start
    for process in started:
        stop_process(process)
    redis.kill()
    if (tmp_path / "worker.log").exists():
        print((tmp_path / "worker.log").read_text()[-3000:])


def upload_import_job(tmp_path: Path, evals_data: Path, *, name: str, lines: int) -> Job:
    """An import job of an uploaded file, as import_job_create leaves it (its message not sent)."""
    path = tmp_path / "uploads" / name / f"{name}.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join((evals_data / PERSONA_FILE).read_text().splitlines(keepends=True)[:lines]))
    return Job.objects.create(
        kind=Job.Kind.IMPORT,
        params={"path": str(path), "filename": path.name, "slug": name, "collection": None},
    )


def send(job: Job, broker_url: str) -> None:
    with app.connection_for_write(broker_url) as conn:
        run_job.apply_async((job.pk,), connection=conn, queue=job_queue(job.kind))


def blocked_session(query: str, *, besides: set[int]) -> int | None:
    """The pid of a session, other than these, waiting for a lock to run a statement like `query`."""
    with psycopg.connect(database_url(), autocommit=True) as probe:
        rows = probe.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE %s",
            [query],
        ).fetchall()
    return next((pid for (pid,) in rows if pid not in besides), None)


def blocked_example_insert(*, besides: set[int]) -> int | None:
    return blocked_session(f'INSERT INTO "{Example._meta.db_table}"%', besides=besides)


def terminate(pid: int) -> None:
    with psycopg.connect(database_url(), autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]


# Generous: they only bound how long a broken run takes to fail; a working one goes on at once.
WORKER_START = 180
RETRY_START = 120


def test_an_upload_import_whose_database_connection_drops_runs_again(tmp_path, evals_data, worker):
    """The examples table is locked, so the import stops inside its transaction; its database session
    is then terminated. The job goes back to the queue with its upload kept, runs again (a new
    session, blocked on the same lock), and once the lock goes it imports the file once and deletes
    the upload. It used to fail for good and delete the upload."""
    broker_url, log = worker(MWE_JOB_RETRY_SECONDS="1")
    with psycopg.connect(database_url()) as locker:
        locker.execute(f'LOCK TABLE "{Example._meta.db_table}" IN SHARE MODE')
        job = upload_import_job(tmp_path, evals_data, name="dropped", lines=120)
        send(job, broker_url)
        first = wait_for(
            lambda: blocked_example_insert(besides=set()), seconds=WORKER_START, what="the import", logs=[log]
        )
        terminate(first)
        wait_for(
            lambda: blocked_example_insert(besides={first}),
            seconds=RETRY_START,
            what="the import running again",
            logs=[log],
        )
        assert Path(job.params["path"]).is_file()
        locker.rollback()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, seconds=RETRY_START, what="the job", logs=[log])

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result["files"][0]["status"] == "imported"
    dataset = Dataset.objects.get(slug="dropped")
    assert dataset.example_count == Example.objects.filter(dataset=dataset).count() == 120
    assert not Path(job.params["path"]).parent.exists()
    text = log.read_text()
    assert text.count(f"job {job.pk} (import) started") == 2
    assert "Retry in 1" in text
    assert f"job {job.pk} was interrupted and goes back to the queue" in text


def test_an_upload_import_interrupted_more_often_than_its_retries_fails_and_deletes_its_file(
    tmp_path, evals_data, worker
):
    """With one retry allowed, a job whose connection drops in both tries fails for good, saying so,
    with nothing written; its upload is deleted then, not before."""
    broker_url, log = worker(MWE_JOB_RETRY_SECONDS="1", MWE_JOB_RETRIES="1")
    with psycopg.connect(database_url()) as locker:
        locker.execute(f'LOCK TABLE "{Example._meta.db_table}" IN SHARE MODE')
        job = upload_import_job(tmp_path, evals_data, name="doomed", lines=50)
        send(job, broker_url)
        first = wait_for(
            lambda: blocked_example_insert(besides=set()), seconds=WORKER_START, what="the import", logs=[log]
        )
        terminate(first)
        second = wait_for(
            lambda: blocked_example_insert(besides={first}),
            seconds=RETRY_START,
            what="the import running again",
            logs=[log],
        )
        assert Path(job.params["path"]).is_file()
        terminate(second)
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished, seconds=RETRY_START, what="the job", logs=[log]
        )
        locker.rollback()

    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("Interrupted 2 times, the last by OperationalError"), job.error
    assert not Dataset.objects.filter(slug="doomed").exists() and not Example.objects.exists()
    assert not Path(job.params["path"]).parent.exists()
    assert log.read_text().count(f"job {job.pk} (import) started") == 2


def test_a_job_whose_database_connection_drops_before_it_starts_runs_again(tmp_path, evals_data, worker):
    """The job's row is locked, so the worker stops while marking it running (any kind of job: none of
    its work has begun); its session is terminated. The message is retried, and once the row is free
    the job runs, once. It used to be dropped, the job left queued until a sweep."""
    broker_url, log = worker(MWE_JOB_RETRY_SECONDS="1")
    with psycopg.connect(database_url()) as locker:
        job = upload_import_job(tmp_path, evals_data, name="unstarted", lines=30)
        locker.execute(f'SELECT id FROM "{Job._meta.db_table}" WHERE id = %s FOR UPDATE', [job.pk])
        send(job, broker_url)
        starting = f'SELECT %FROM "{Job._meta.db_table}"%FOR UPDATE%'
        first = wait_for(
            lambda: blocked_session(starting, besides=set()), seconds=WORKER_START, what="the job", logs=[log]
        )
        terminate(first)
        wait_for(
            lambda: blocked_session(starting, besides={first}),
            seconds=RETRY_START,
            what="the job starting again",
            logs=[log],
        )
        locker.rollback()
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, seconds=RETRY_START, what="the job", logs=[log])

    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert Example.objects.filter(dataset__slug="unstarted").count() == 30
    assert not Path(job.params["path"]).parent.exists()
    text = log.read_text()
    assert f"job {job.pk} could not start and goes back to the queue" in text
    assert "Retry in 1" in text
    assert text.count(f"job {job.pk} (import) started") == 1
