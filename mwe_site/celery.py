"""The Celery app. Jobs (generation, evaluation, embedding) are registered by the apps' tasks modules.

The embedded default needs no server: the broker is kombu's SQLAlchemy transport on a SQLite file
under var/. Production points CELERY_BROKER_URL at Redis.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.local")

app = Celery("mwe_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
