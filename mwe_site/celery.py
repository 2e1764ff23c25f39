"""The Celery app. Jobs (generation, evaluation, embedding) are registered by the apps' tasks modules.

The embedded default needs no server: the broker is kombu's SQLAlchemy transport on a SQLite file
under var/. Production points CELERY_BROKER_URL at Redis.
"""

import logging
import os

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.local")

logger = logging.getLogger(__name__)

app = Celery("mwe_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each app's `tasks` module, and the job machinery's, which lives in a sub-package of generation.
app.autodiscover_tasks()
app.autodiscover_tasks(["generation.jobs"])


class RequeueLostJobs(bootsteps.StartStopStep):
    """Every time a worker connects to the broker, at start and after each reconnection (a Redis
    restart drops every worker's connection), it sends again the jobs whose task message the broker
    may have lost (`generation.jobs.services.job_requeue_stale`). Celery's `worker_ready` signal would fire at
    start only, and a broker can lose its queue while the workers stay up."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, consumer) -> None:
        from django.db import connection

        try:
            from generation.jobs.services import REQUEUE_AFTER, job_requeue_stale

            job_requeue_stale(older_than=REQUEUE_AFTER)
        except Exception:
            # A failed sweep must not keep the worker from consuming; the next reconnection or the
            # `requeue_jobs` command tries again.
            logger.exception("could not look for lost jobs")
        finally:
            # The worker's main process runs no task (except with --pool=solo): hold no connection.
            connection.close()


app.steps["consumer"].add(RequeueLostJobs)
