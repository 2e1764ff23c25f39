"""The Celery task that runs a job. generation.jobs.services sends it by its registered name
(RUN_JOB_TASK) and never imports this module, which imports that one."""

from celery import shared_task
from django.conf import settings

from generation.jobs.services import RUN_JOB_TASK, JobInterrupted, job_give_up, job_retry_delay, job_run


@shared_task(name=RUN_JOB_TASK, acks_late=True, bind=True)
def run_job(self, job_id: int) -> None:
    try:
        job_run(job_id=job_id)
    except JobInterrupted as exc:
        # A transient failure (the database connection was lost): the job is queued and this message
        # is sent again after a growing delay, until the retries are used up.
        retries = self.request.retries
        if retries >= settings.MWE_JOB_RETRIES:
            job_give_up(job_id=job_id, error=str(exc), tries=retries + 1)
            return
        raise self.retry(
            exc=exc, countdown=job_retry_delay(attempt=retries), max_retries=settings.MWE_JOB_RETRIES
        ) from exc
