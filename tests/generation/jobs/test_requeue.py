"""Lost task messages: which jobs a sweep (generation.jobs.services.job_requeue_stale) sends again, and the job
lock that makes every extra copy of a message harmless. In-process, on kombu's in-memory broker; the
same tests run on PostgreSQL (advisory locks) from test_requeue_postgres.py, and
tests/test_faults_postgres.py restarts a real Redis under real workers."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from generation.jobs import services as jobs
from generation.jobs.services import SWEEP_LOCK_ID, _job_lock, job_finish, job_requeue_stale, job_run
from generation.jobs.tasks import run_job
from generation.models import Job
from mwe_site.celery import app

pytestmark = pytest.mark.django_db
QUEUES = ("default", "models")


@pytest.fixture
def broker(monkeypatch):
    """kombu's in-memory broker, emptied; tasks are sent to it, not run inline."""
    monkeypatch.setitem(app.conf, "task_always_eager", False)
    monkeypatch.setitem(app.conf, "broker_url", "memory://")
    with app.connection_for_write() as conn:
        for queue in QUEUES:
            conn.default_channel.queue_declare(queue=queue)
            conn.default_channel.queue_purge(queue)


def send(job: Job) -> None:
    with app.connection_for_write() as conn:
        run_job.apply_async((job.pk,), queue=jobs.job_queue(job.kind), connection=conn)


def take(queue: str) -> list[int]:
    """The job ids of the messages waiting in `queue`, in order; takes them off it."""
    ids = []
    with app.connection_for_write() as conn:
        while (message := conn.default_channel.basic_get(queue, no_ack=True)) is not None:
            args, _kwargs, _embed = message.decode()
            ids.append(args[0])
    return ids


def job(
    kind: str = Job.Kind.IMPORT, *, status: str = Job.Status.QUEUED, age: timedelta = timedelta(0)
) -> Job:
    made = Job.objects.create(kind=kind, status=status)
    Job.objects.filter(pk=made.pk).update(created_at=timezone.now() - age)
    return made


OLD = timedelta(minutes=10)
GRACE = timedelta(minutes=2)


def test_a_copy_of_a_message_does_nothing_while_the_job_runs_elsewhere_or_once_it_finished(monkeypatch):
    runs = []

    def handler(job: Job) -> None:
        runs.append(job.pk)
        job_finish(job=job, result={})

    monkeypatch.setitem(jobs.JOB_HANDLERS, Job.Kind.IMPORT, handler)
    queued = job()
    with _job_lock(queued.pk) as acquired:  # another process is running it
        assert acquired
        job_run(job_id=queued.pk)
        assert runs == [] and Job.objects.get(pk=queued.pk).status == Job.Status.QUEUED
    job_run(job_id=queued.pk)
    job_run(job_id=queued.pk)
    assert runs == [queued.pk]
    assert Job.objects.get(pk=queued.pk).status == Job.Status.SUCCEEDED


def test_a_sweep_sends_stale_queued_jobs_when_their_queue_lacks_messages(broker):
    lost = job(age=OLD)  # its message went with the broker
    young = job()  # its message is in the queue
    send(young)
    kept = job(Job.Kind.GENERATE, age=OLD)  # its message is in the queue
    send(kept)
    job(status=Job.Status.SUCCEEDED, age=OLD)
    job(status=Job.Status.CANCELLED, age=OLD)

    assert job_requeue_stale(older_than=GRACE) == 1
    # Now "default" holds as many messages as it has queued jobs: a second sweep copies nothing.
    assert job_requeue_stale(older_than=GRACE) == 0
    assert take("default") == [young.pk, lost.pk]
    assert take("models") == [kept.pk]


def test_a_queue_short_of_messages_gets_all_its_stale_jobs_again(broker):
    """Which message is missing cannot be told: every stale job of that queue is sent, the young one
    is left for a later sweep (its message may still be on its way)."""
    first, second, young = job(age=OLD), job(age=OLD), job()
    send(second)
    assert job_requeue_stale(older_than=GRACE) == 2
    assert take("default") == [second.pk, first.pk, second.pk]
    assert young.pk not in take("default")


def test_a_sweep_sends_running_jobs_whose_process_died_but_not_those_a_live_process_runs(broker):
    alive = job(Job.Kind.GENERATE, status=Job.Status.RUNNING, age=OLD)
    dead = job(status=Job.Status.RUNNING)
    with _job_lock(alive.pk) as acquired:  # the live worker running it
        assert acquired
        assert job_requeue_stale(older_than=GRACE) == 1
        assert take("default") == [dead.pk] and take("models") == []
    # Its worker has died: its lock went with it.
    assert job_requeue_stale(older_than=GRACE) == 2
    assert take("default") == [dead.pk] and take("models") == [alive.pk]


def test_one_sweep_at_a_time(broker):
    """All the workers reconnect at once after a broker restart; the second sweep would only send the
    same jobs twice."""
    lost = job(age=OLD)
    with _job_lock(SWEEP_LOCK_ID) as acquired:  # another process's sweep
        assert acquired
        assert job_requeue_stale(older_than=GRACE) == 0
    assert job_requeue_stale(older_than=GRACE) == 1
    assert take("default") == [lost.pk]


def test_the_requeue_jobs_command(broker):
    lost = job(age=timedelta(seconds=90))
    out = StringIO()
    call_command("requeue_jobs", stdout=out)
    assert out.getvalue() == "0 jobs sent again\n"  # within the default grace of two minutes
    call_command("requeue_jobs", "--older-than", "60", stdout=out)
    assert out.getvalue().endswith("1 job sent again\n")
    assert take("default") == [lost.pk]
