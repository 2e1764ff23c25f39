"""A generation job whose worker is killed with SIGKILL mid-run is delivered again by the broker
(Redis, acks_late) to a new worker, which resumes it: the candidates stored before the kill stay as
they were, none is written twice, and the run finishes."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from generation.generate import PersonaSpec, generation_run_create
from generation.models import Candidate, GenerationRun, Job
from generation.tasks import run_job
from mwe_site.celery import app
from tests.generation.test_worker_postgres import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
BROKER = "redis://127.0.0.1:6379/14"
QUEUE = f"kill-test-{os.getpid()}"


def start_worker(tmp_path, name: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": BROKER,
        "MWE_BROKER_VISIBILITY_TIMEOUT": "3",
        "MWE_VAR_DIR": str(tmp_path / name),
        "HF_HUB_OFFLINE": "1",
    }
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mwe_site",
            "worker",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{name}@%h",
            "-Q",
            QUEUE,
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so the kill takes its pool child too
    )


def wait_for(predicate, *, seconds: float, what: str, logs):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(p.read_text()[-2000:] for p in logs))


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

    first = start_worker(tmp_path, "first")
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    with app.connection_for_write(BROKER) as conn:
        run_job.apply_async((job.pk,), connection=conn, queue=QUEUE)
    try:
        wait_for(lambda: run.candidates.count() >= 4, seconds=120, what="two stored batches", logs=logs)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    before = {c.pk: (c.label, c.sample_index, c.raw_output) for c in run.candidates.all()}
    assert len(before) % 2 == 0 and len(before) < 16  # whole batches only, the run not finished
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING

    second = start_worker(tmp_path, "second")
    try:
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished, seconds=240, what="the redelivered job", logs=logs
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    job.refresh_from_db()
    run.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert run.status == GenerationRun.Status.SUCCEEDED and run.dataset is not None
    after = {c.pk: (c.label, c.sample_index, c.raw_output) for c in run.candidates.all()}
    assert len(after) == 16
    assert {pk: after[pk] for pk in before} == before  # nothing stored before the kill changed
    assert len({(label, index) for label, index, _ in after.values()}) == 16
    assert Candidate.objects.filter(run=run, decision="pending").count() == 0
