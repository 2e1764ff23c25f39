"""A generation job whose worker is killed with SIGKILL mid-run is delivered again by the broker
(Redis, acks_late) to a new worker, which resumes it: the candidates stored before the kill stay as
they were, none is written twice, and the run finishes."""

import os
import signal

import pytest

from generation.generate import PersonaSpec, generation_run_create
from generation.models import Candidate, GenerationRun, Job
from generation.tasks import run_job
from mwe_site.celery import app
from tests.processes import start_worker, stop_process, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
BROKER = "redis://127.0.0.1:6379/14"
QUEUE = f"kill-test-{os.getpid()}"


def worker(tmp_path, name: str):
    return start_worker(
        tmp_path, name, broker_url=BROKER, queues=[QUEUE], env={"MWE_BROKER_VISIBILITY_TIMEOUT": "3"}
    )


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

    second = worker(tmp_path, "second")
    try:
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished, seconds=240, what="the redelivered job", logs=logs
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
