"""The embedded default for a developer or a researcher on one machine: `make run`."""

from mwe_site.settings.base import *  # noqa: F403
from mwe_site.settings.base import SECRET_KEY, env_bool

DEBUG = env_bool("DEBUG", True)
# A fixed key is acceptable only because this settings module never serves the public.
SECRET_KEY = SECRET_KEY or "local-development-only-not-secret"
# Static files straight from the source folders: no collectstatic step before running or testing.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
