"""The embedded default for a developer or a researcher on one machine: `make run`."""

from mwe_site.settings.base import *  # noqa: F403
from mwe_site.settings.base import SECRET_KEY, env_bool

# Off unless asked for (DEBUG=1 make run): a visitor gets the site's own 404 and 500 pages, not
# Django's, which list every URL pattern and the settings; and the query log DEBUG keeps is never
# filled by a long job in the embedded worker.
DEBUG = env_bool("DEBUG", False)
# A fixed key is acceptable only because this settings module never serves the public.
SECRET_KEY = SECRET_KEY or "local-development-only-not-secret"
# Static files straight from the source folders: no collectstatic step before running or testing.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
