from celery import shared_task

from generation.jobs import job_run


@shared_task(name="generation.run_job", acks_late=True)
def run_job(job_id: int) -> None:
    job_run(job_id=job_id)
