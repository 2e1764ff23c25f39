"""A real Celery worker process runs a queued job against PostgreSQL, through the embedded default
broker (SQLite file, no server) and through Redis (production)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from generation.models import Dataset, Job
from generation.tasks import run_job
from mwe_site.celery import app

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    db = connection.settings_dict
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{port}/{db['NAME']}"


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
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "MWE_VAR_DIR": str(tmp_path / "worker-var"),
    }
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mwe_site",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            "-Q",
            f"test-{os.getpid()}",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield broker_url, f"test-{os.getpid()}"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
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
