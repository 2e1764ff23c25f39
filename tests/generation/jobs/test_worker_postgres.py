"""A real Celery worker process runs a queued job against PostgreSQL, through the embedded default
broker (SQLite file, no server) and through Redis (production)."""

import os
import shutil
import time
from pathlib import Path

import pytest

from generation.jobs.tasks import run_job
from generation.models import Dataset, Job
from mwe_site.celery import app
from tests.processes import start_worker, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def persona_file(tmp_path, evals_data) -> Path:
    target = tmp_path / "upload" / "narcissism.jsonl"
    target.parent.mkdir()
    shutil.copy(evals_data / "persona" / "narcissism.jsonl", target)
    return target


@pytest.fixture
def worker_process(tmp_path, request):
    """Starts `celery worker` on the broker URL given by the test's parameter; yields that URL."""
    broker_url = request.param.format(tmp=tmp_path)
    queue = f"test-{os.getpid()}"
    process = start_worker(tmp_path, "worker", broker_url=broker_url, queues=[queue], pool=["--pool=solo"])
    yield broker_url, queue
    stop_process(process)
    print((tmp_path / "worker.log").read_text()[-3000:])


@pytest.mark.parametrize(
    "worker_process",
    ["sqla+sqlite:///{tmp}/broker.sqlite3", "redis://127.0.0.1:6379/15"],
    indirect=True,
    ids=["sqlite-broker", "redis-broker"],
)
def test_worker_runs_a_queued_import(worker_process, persona_file, monkeypatch):
    broker_url, queue = worker_process
    job = Job.objects.create(
        kind=Job.Kind.IMPORT,
        params={"path": str(persona_file), "filename": persona_file.name, "slug": None, "collection": None},
    )
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    with app.connection_for_write(broker_url) as conn:
        run_job.apply_async((job.pk,), connection=conn, queue=queue)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_finished:
            break
        time.sleep(0.5)
    assert job.status == Job.Status.SUCCEEDED, f"{job.status}: {job.error}"
    dataset = Dataset.objects.get(slug="narcissism")
    assert dataset.example_count == 1000
    assert job.started_at is not None and job.finished_at >= job.started_at
