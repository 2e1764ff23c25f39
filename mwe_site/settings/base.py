"""Settings shared by every environment; everything that differs between machines comes from the
environment. The embedded default (no variables set) is a SQLite database and a SQLite-backed Celery
broker under var/, so a fresh checkout runs with no server to install."""

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("MWE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "generation",
    "annotation",
    "analysis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL in the path or query string is a 400 before static files, sessions or any view see it.
    "mwe_site.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A crowdworker's browser stays on the annotation pages: the rest of the site shows labels.
    "annotation.middleware.WorkerConfinementMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "mwe_site.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "mwe_site.urls"
WSGI_APPLICATION = "mwe_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'mwe.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement once it has run this many times on one connection. Only cursors
    # that bind parameters on the server use it (annotation.hotpath.hot_cursor: the annotation
    # API's claim, submit and authentication), never the ORM's. Empty turns it off, as a
    # transaction-mode connection pooler needs.
    _prepare_threshold = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5")
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
        int(_prepare_threshold) if _prepare_threshold else None
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; the timeout makes concurrent writers
    # wait for the lock instead of failing at once with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


# --- Abuse limits of the public site (issue 13: search, statement timeout, downloads) -----------------
# PostgreSQL cancels any statement of a web process (gunicorn, runserver; never a Celery worker or a
# command) that runs longer than this, and the request gets a 503 (mwe_site/statement_timeout.py).
# 15 s: far above any page's queries on the released data, far below gunicorn's 60 s timeout. 0: off.
MWE_WEB_STATEMENT_TIMEOUT_MS = env_int("MWE_WEB_STATEMENT_TIMEOUT_MS", 15000)
# Crowdworkers' invite links: how long a new or rotated link signs workers in, and how long a sign-in
# through one lasts, counted from the sign-in (activity does not extend it).
MWE_INVITE_TTL_DAYS = env_int("MWE_INVITE_TTL_DAYS", 14, minimum=1)
MWE_WORKER_SESSION_SECONDS = env_int("MWE_WORKER_SESSION_SECONDS", 12 * 3600, minimum=1)
# --- end of the abuse limits -------------------------------------------------------------------------

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# plotly.js for every chart and the explorer's map is its "strict" build, served by this site as
# static/plotly/plotly-strict.min.js: no CDN, since the site must work on machines without internet
# access. The strict build, unlike the one in the plotly Python package, never evaluates strings as
# code (its WebGL shaders are precompiled), so the map draws under `script-src 'self'` without
# 'unsafe-eval'; the regular build's WebGL code is refused by the policy and the explorer's map
# showed "WebGL is not supported". `make setup` installs it from npm (package-lock.json pins it,
# with its hash), at the version of plotly.js inside the pinned plotly Python package (4.1.1), which
# builds the figures.
PLOTLY_JS_DIR = BASE_DIR / "node_modules" / "plotly.js-strict-dist-min"
STATICFILES_DIRS += [("plotly", PLOTLY_JS_DIR)]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# Content Security Policy, in every environment so the tests and `make run` see what production
# serves: scripts only from this site (pages pass data to them with json_script, which is not
# executed), nothing framed, no plugins. plotly.js adds <style> elements and style attributes as it
# draws, so styles may be inline; images from data: and blob: are its icons and PNG export.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "blob:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "mwe_site.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        # DRF's SearchFilter with bounds on the terms and length of ?search= (a 400 past them).
        "mwe_site.search.BoundedSearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    # DRF's defaults, but JSON nested deeper than a limit is a 400 before it is parsed (json.loads
    # recursed until a RecursionError, a 500). Form bodies cannot nest.
    "DEFAULT_PARSER_CLASSES": [
        "mwe_site.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # How many proxies in front of the web processes append to X-Forwarded-For: rate limits tell
    # anonymous clients apart by the address the outermost proxy saw. 0 (no proxy): REMOTE_ADDR,
    # and the header, which any client can write, is ignored.
    "NUM_PROXIES": env_int("MWE_PROXY_COUNT", 0),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Requests with ?search= count against the shared "search" limit (mwe_site.search.SearchThrottle);
    # the annotation API sets its own throttle_scope.
    "DEFAULT_THROTTLE_CLASSES": ["mwe_site.search.SearchThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "annotation": os.environ.get("MWE_ANNOTATION_THROTTLE", "600/minute"),
        # The researcher API (annotation/researcher_api.py), per researcher.
        "researcher": os.environ.get("MWE_RESEARCHER_THROTTLE", "600/minute"),
    },
}
# Public endpoints that cost CPU, memory or database time, limited per client (user, else address)
# through the shared cache (mwe_site.throttling); staff are not limited. MWE_THROTTLE_<SCOPE>
# overrides one, e.g. MWE_THROTTLE_SEMANTIC_SEARCH=20/minute.
MWE_THROTTLE_RATES = {
    scope: os.environ.get(f"MWE_THROTTLE_{scope.upper()}", default)
    for scope, default in {
        # text search: the dataset pages' ?q= and the API's ?search=
        "search": "60/minute",
        # the explorer's search by meaning: a MiniLM embedding of the query per request
        "semantic_search": "10/minute",
        # the explorer's point panel: neighbours, ratings and evaluations of one point
        "explorer_point": "120/minute",
        # a map's payload (megabytes for the big maps) and the overlays computed per request
        "explorer_map": "30/minute",
        # whole-dataset downloads (JSONL, CSV exports)
        "download": "20/minute",
        # sign-in attempts (the admin login), per address and per username
        "login": "10/minute",
        # arrivals through a crowd platform's study link (each may create a worker), per address
        "study": "30/minute",
        # a job's or run's progress, which its page polls every 2 s while it runs
        "progress": "90/minute",
    }.items()
}


# The cache behind the throttles and anything else that must be shared by every process. Production
# sets CACHE_URL (redis://...; it defaults to the broker when that is Redis); without it, each
# process has its own local-memory cache, which is right for `make run`'s single web process.
def redis_caches(location: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": "mwe",
            # A cache that does not answer must not hang a request for long.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }


CACHE_URL = os.environ.get("CACHE_URL", "")
if CACHE_URL:
    CACHES = redis_caches(CACHE_URL)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# How long a web process reuses an API token look-up (annotation.hotpath.token_cache): a deleted
# token or a deactivated user keeps working in other processes for at most this long. 0 turns it off.
MWE_API_TOKEN_CACHE_SECONDS = float(os.environ.get("MWE_API_TOKEN_CACHE_SECONDS", "5"))

SPECTACULAR_SETTINGS = {
    "TITLE": "Model-written evaluations API",
    "DESCRIPTION": "Datasets of model-written evaluations (Perez et al., 2022) and their examples.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status"; name the annotation lease's enum explicitly.
    "ENUM_NAME_OVERRIDES": {
        "AssignmentStatusEnum": "annotation.models.AssignmentStatus",
        "RunStatusEnum": "generation.models.Status",
        # Runs and suites share their scorer's choices; items have others (generation.models.Scorer).
        "RunScorerEnum": "generation.models.RunScorer",
    },
}

# Celery: the embedded default is a SQLite-file broker (kombu's SQLAlchemy transport), so
# `make run` needs no server; production sets CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = (
    os.environ.get("CELERY_BROKER_URL") or f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
# Progress and outcomes of long work live in the Job table, not in a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
# A task whose pool process died (OOM killer, SIGKILL) goes back to the queue instead of being
# acknowledged as failed: jobs are idempotent, so running one again loses nothing.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Imports and other light work; model work goes to "models" (generation.jobs.services.job_queue).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Workers log through LOGGING like the web processes (same format, JSON in production), instead of
# Celery replacing the root logger's handlers with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# With acks_late, a task whose worker died is delivered again once this many seconds have passed
# (Redis and SQS brokers). A copy delivered while the job still runs elsewhere is dropped (a job runs
# only under its lock, generation.jobs.services._job_lock), so a short timeout costs one query per copy; a
# job whose worker died waits this long, unless a sweep (job_requeue_stale) sends it sooner.
# Only brokers that have the notion get the option: the SQLAlchemy transport hands its options to
# create_engine, which rejects unknown ones.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": int(os.environ.get("MWE_BROKER_VISIBILITY_TIMEOUT", str(6 * 3600)))}
    if CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs"))
    else {}
)

# Where the data released with the paper lives (never copied into this repository).
MWE_EVALS_DATA = Path(
    os.environ.get("MWE_EVALS_DATA", BASE_DIR.parent / "shared" / "data" / "anthropic-evals")
)
# The licence dataset cards give datasets this site generated (an id as the Hugging Face Hub's cards
# take it); released data keeps its own, CC BY 4.0. Generated text is the operator's to license.
MWE_GENERATED_DATA_LICENSE = os.environ.get("MWE_GENERATED_DATA_LICENSE", "cc-by-4.0")
# A line longer than this is rejected on import: no released record comes close (the longest is
# about 2 KB), and an unbounded line would let one bad file exhaust memory.
MWE_IMPORT_MAX_LINE_BYTES = int(os.environ.get("MWE_IMPORT_MAX_LINE_BYTES", str(1024 * 1024)))
# What a record may carry beyond the known fields (kept as Example.extra, shown on the public example
# page): nesting levels of one field's value, and bytes of all of them as compact JSON. The released
# files reach 1 level and 560 bytes; a 36 KB record nested 900 levels deep made a 33 MB page.
MWE_IMPORT_MAX_EXTRA_DEPTH = int(os.environ.get("MWE_IMPORT_MAX_EXTRA_DEPTH", "8"))
MWE_IMPORT_MAX_EXTRA_BYTES = int(os.environ.get("MWE_IMPORT_MAX_EXTRA_BYTES", str(16 * 1024)))
# A job that loses its database connection (an import at any point, any job before its work began)
# goes back to the queue this many times, after MWE_JOB_RETRY_SECONDS, then twice that, and so on
# (10 s to 160 s: 5 minutes in all), before it fails for good; an upload is kept until then.
MWE_JOB_RETRIES = int(os.environ.get("MWE_JOB_RETRIES", "5"))
MWE_JOB_RETRY_SECONDS = float(os.environ.get("MWE_JOB_RETRY_SECONDS", "10"))

# MWE_LOG_FORMAT=json writes one JSON object per line (time, level, logger, message and any `extra`
# fields) for a log collector; production defaults to it, a terminal to plain lines.
MWE_LOG_FORMAT = os.environ.get("MWE_LOG_FORMAT", "plain")
if MWE_LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"MWE_LOG_FORMAT={MWE_LOG_FORMAT!r}: use plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": MWE_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's own default config gives "django" a console handler too; one line per message is enough.
    "loggers": {"django": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
MWE_UPLOAD_MAX_BYTES = int(os.environ.get("MWE_UPLOAD_MAX_BYTES", str(200 * 1024 * 1024)))
# The model that writes the explorer's one-sentence cluster summaries (a model spec, e.g.
# smollm2-135m); empty: clusters are labelled with their keywords only.
MWE_EXPLORER_SUMMARY_MODEL = os.environ.get("MWE_EXPLORER_SUMMARY_MODEL", "")
# The model servers an openai: spec may call (specs are typed by staff in the site, and a server that
# is called gets the prompts and the spec's key): comma-separated `host` (any port on it) or
# `host:port` (`[v6]:port`), host names compared case-insensitively. Loopback here, for `make run` and
# the tests; production.py starts from none. A spec's key comes from a variable named MWE_MODEL_KEY_*.
MWE_MODEL_SERVER_HOSTS = env_list("MWE_MODEL_SERVER_HOSTS", ["127.0.0.1", "localhost", "::1"])
# Where embedded models that ship in chunks (gemma3-270m) are assembled into one GGUF, once, on first
# load or at `make setup`: a folder the site may write, outside the tracked files and site-packages
# (which a deployment may mount read-only). Fixed at startup, not under each test's VAR_DIR, so the
# test suite assembles once.
MWE_MODEL_CACHE = Path(os.environ.get("MWE_MODEL_CACHE", VAR_DIR / "models"))
# Keep the transformers form of a local GGUF model in MWE_MODEL_CACHE/converted (generation/lm/local.py,
# converted_folder): loads take seconds instead of converting the GGUF again each time.
MWE_CACHE_CONVERTED_MODELS = env_bool("MWE_CACHE_CONVERTED_MODELS", True)
