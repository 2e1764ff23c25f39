"""Production: PostgreSQL (DATABASE_URL), Redis (CELERY_BROKER_URL), a real SECRET_KEY, HTTPS."""

import os

from django.core.exceptions import ImproperlyConfigured

from mwe_site.settings.base import *  # noqa: F403
from mwe_site.settings.base import (
    DATABASES,
    LOGGING,
    REST_FRAMEWORK,
    SECRET_KEY,
    env_bool,
    env_int,
    env_list,
    redis_caches,
)

DEBUG = env_bool("DEBUG", False)
if not SECRET_KEY or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("production needs SECRET_KEY set to a random string of 32+ characters")
if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured("production needs DATABASE_URL (postgres://...)")
if not os.environ.get("CELERY_BROKER_URL"):
    raise ImproperlyConfigured("production needs CELERY_BROKER_URL (redis://...)")
# Behind the HTTPS proxy this guide asks for: the client's address is the one it appended to
# X-Forwarded-For. Set MWE_PROXY_COUNT=0 when clients reach gunicorn directly (make run-prod).
REST_FRAMEWORK["NUM_PROXIES"] = env_int("MWE_PROXY_COUNT", 1)
# Throttles count in a cache every process shares: Redis, the broker's unless CACHE_URL names another.
# With neither, each process counts on its own (`check --deploy` warns: mwe_site.W001).
if not os.environ.get("CACHE_URL") and os.environ["CELERY_BROKER_URL"].startswith(("redis://", "rediss://")):
    CACHES = redis_caches(os.environ["CELERY_BROKER_URL"])
if os.environ.get("MWE_LOG_FORMAT") is None:
    LOGGING["handlers"]["console"]["formatter"] = "json"
# No model server is called until the operator lists it (see base.py).
MWE_MODEL_SERVER_HOSTS = env_list("MWE_MODEL_SERVER_HOSTS", [])
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Persistent connections: opening one per request costs more than most requests' own work.
DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("DATABASE_CONN_MAX_AGE", "60"))

# The site is served over HTTPS, by a proxy in front of gunicorn that sets X-Forwarded-Proto.
# MWE_HTTPS=0 is for running this stack over plain HTTP on one machine (`make run-prod`, the smoke
# test): no redirect to https, cookies not marked secure, no HSTS. `check --deploy` warns about it.
HTTPS = env_bool("MWE_HTTPS", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
# Load balancers probe over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "mwe_site.staticfiles.SiteStaticFilesStorage"},
}
