"""The WSGI application, loaded only by web servers: gunicorn (`mwe_site.wsgi:application`) and
`manage.py runserver` (WSGI_APPLICATION). Loading it marks the process as a web process, whose
database statements PostgreSQL cancels past MWE_WEB_STATEMENT_TIMEOUT_MS (see
mwe_site/statement_timeout.py); Celery workers and management commands never load it."""

import os

from django.core.wsgi import get_wsgi_application

from mwe_site.statement_timeout import web_statement_timeout_install

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.local")
application = get_wsgi_application()

web_statement_timeout_install()
