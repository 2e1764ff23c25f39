"""gunicorn settings for serving the site in production:

    gunicorn -c mwe_site/gunicorn.conf.py mwe_site.wsgi:application

Every value comes from the environment (GUNICORN_*), so one file serves every machine; command-line
options override it. The defaults are what measured best for the annotation API on a 2-core machine
that also runs PostgreSQL (benchmarks/annotation_load.py, 50 workers): the work is CPU-bound Python,
so one process per core; four threads per process keep it busy while some of its requests wait on
PostgreSQL; gthread workers keep client connections alive (the sync worker closes each one after a
single request); each process has a listening socket of its own (reuse_port, below). Measured on a
quiet machine, alternating:
- with reuse_port: 386 / 409 / 411 claim+submit pairs/s, p95 97 / 94 / 103 ms;
- one shared socket: 349 / 446 / 373 pairs/s, p95 160 / 113 / 127 ms;
- cores + 1 processes of 2 threads on one socket: 293 / 371 / 412 pairs/s, p95 221 / 171 / 126 ms.
With reuse_port, 3 processes x 3 threads gave 421 and 356 pairs/s at p95 107 and 110 ms, and
4 x 2 gave 288 and 316 at p95 136 and 131 ms.
"""

import os

_cores = os.cpu_count() or 1

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(_cores)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "30"))
# Each worker process listens on a socket of its own (SO_REUSEPORT), so the kernel spreads new
# connections evenly over the processes (28 and 22 of the benchmark's 50). On one shared socket,
# whichever process woke first took most of them (42 of 50), and as a keep-alive connection stays
# with its process, one process queued requests while the other idled. The cost: connections still
# waiting in a recycled worker's queue (max_requests) are reset, and clients retry them.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "1") not in {"0", "false", "no", "off"}
# Import the site once in the master, before forking: less memory, and a broken deploy fails at
# start rather than in every worker. No database connection is opened at import.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") not in {"0", "false", "no", "off"}
# Recycle workers now and then (with jitter, so not all at once) to bound any slow leak.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "20000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "2000"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = os.environ.get("GUNICORN_ERRORLOG", "-")
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# gunicorn's control socket lives at one path per user (~/.gunicorn/gunicorn.ctl), so a second server
# on the machine (another site, a test) would take it over; this site does not use it. Give it a
# path of this server's own in GUNICORN_CONTROL_SOCKET to have one.
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET")
control_socket_disable = not _control_socket
if _control_socket:
    control_socket = _control_socket
