"""Settings for the test suite: the same code paths as local, faster hashing, no real secrets."""

from mwe_site.settings.base import *  # noqa: F403
from mwe_site.settings.base import SECRET_KEY

DEBUG = False
SECRET_KEY = SECRET_KEY or "test-only-not-secret"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# Jobs run inline in the test process; tests of the real worker start one and turn this off.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# Static files straight from the source folders: no collectstatic step before running or testing.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
