"""Reads of a job's state that its handler needs while it runs."""

from generation.models import Job


def job_cancel_requested(*, job: Job) -> bool:
    """Whether someone asked this job to stop (generation.jobs.services.job_cancel): read from the
    database at each checkpoint, since the request comes from another process."""
    return Job.objects.filter(pk=job.pk, cancel_requested=True).exists()
