"""Launchers for the tests that run real server processes against the test database: Celery workers,
a private redis-server, gunicorn. Each process gets its own process group, so stopping (or killing)
it takes its children (a prefork worker's pool, gunicorn's workers) too, and its own log file, whose
tail a failing test prints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.db import connection


def database_url() -> str:
    """The URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    port = db.get("PORT") or 5432
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{port}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], *, seconds: float, what: str, logs: Iterable[Path] = ()):
    """Polls `predicate` until it returns something true, which it returns; fails the test with the
    tails of `logs` when `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out after {seconds} s waiting for {what}\n{tails}")


def _spawn(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log_path.open("a") as log:
        return subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(process: subprocess.Popen, *, timeout: float = 20) -> None:
    """SIGTERM to the process group (a worker finishes its task, gunicorn its requests), then
    SIGKILL if it is still there after `timeout`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def child_commands(launcher: subprocess.Popen) -> list[str]:
    """The command lines of every process a launcher started, its children's children included."""
    return [" ".join(child.cmdline()) for child in psutil.Process(launcher.pid).children(recursive=True)]


def interrupt_and_wait(launcher: subprocess.Popen, *, seconds: float) -> None:
    """Ctrl-C, as a terminal sends it to its foreground process group; fails unless the launcher
    and every process it started are gone within `seconds`."""
    children = psutil.Process(launcher.pid).children(recursive=True)
    os.killpg(launcher.pid, signal.SIGINT)
    launcher.wait(timeout=seconds)
    _, alive = psutil.wait_procs(children, timeout=seconds)
    assert not alive, [p.cmdline() for p in alive]


def site_env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    """The environment of a site process on the test settings and this test's database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": database_url(),
        "MWE_VAR_DIR": str(tmp_path / name),
        "HF_HUB_OFFLINE": "1",
        **extra,
    }


def production_env(tmp_path: Path, name: str, *, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of a worker or a management command on the production settings, as deployed
    (over plain HTTP, plain-text logs). Not the test settings: they run every task a process sends
    inline (CELERY_TASK_ALWAYS_EAGER), so a worker would run a job it sends instead of queueing it.
    `extra` may override any of these."""
    defaults = {
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.production",
        "SECRET_KEY": "fault-tests-only-not-secret-" + "x" * 32,
        "CELERY_BROKER_URL": broker_url,
        "MWE_HTTPS": "0",
        "MWE_LOG_FORMAT": "plain",
    }
    return site_env(tmp_path, name, **{**defaults, **extra})


def start_worker(
    tmp_path: Path,
    name: str,
    *,
    broker_url: str,
    queues: Iterable[str],
    pool: Iterable[str] = ("--concurrency=1",),
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """`celery worker` named `name`, consuming `queues` on `broker_url`, on the production settings;
    logs to tmp_path/name.log."""
    return _spawn(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mwe_site",
            "worker",
            *pool,
            "--loglevel=INFO",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{name}@%h",
            "-Q",
            ",".join(queues),
        ],
        log_path=tmp_path / f"{name}.log",
        env=production_env(tmp_path, name, broker_url=broker_url, **(env or {})),
    )


class RedisServer:
    """A private redis-server on a free port; the machine's shared Redis is never restarted.
    Without AOF it keeps nothing on disk (`--save ""`), so a restart loses every queued message."""

    def __init__(self, directory: Path, *, appendonly: bool):
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.port = free_port()
        self.log_path = directory / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0)

    def start(self) -> None:
        self.process = _spawn(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                # The default, everysec, acknowledges a write before it reaches the file (and may hold it
                # for up to 2 s while a background fsync runs), so a SIGKILL right after queueing could
                # lose the message the AOF test expects to survive: CI saw exactly that once.
                "--appendfsync",
                "always",
                "--dir",
                str(self.directory),
            ],
            log_path=self.log_path,
        )

        def answers() -> bool:
            import redis

            try:
                return bool(self.client().ping())
            except redis.ConnectionError:  # also BusyLoadingError, while it reads the AOF back
                return False

        wait_for(answers, seconds=20, what=f"redis-server on port {self.port}", logs=[self.log_path])

    def kill(self) -> None:
        """SIGKILL, as in a crash: what AOF has written (every acknowledged write, with appendfsync
        always) survives, nothing else does."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()


def start_gunicorn(tmp_path: Path, *, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """gunicorn with mwe_site/gunicorn.conf.py (one worker) on the test settings and this test's
    database; returns the process and its base URL once it answers."""
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    process = _spawn(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "mwe_site/gunicorn.conf.py",
            "mwe_site.wsgi:application",
        ],
        log_path=log_path,
        env=site_env(
            tmp_path,
            "gunicorn",
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="1",
            GUNICORN_ACCESSLOG="-",
            **(env or {}),
        ),
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/", timeout=2):  # noqa: S310
                return True
        except OSError:
            return False

    wait_for(answers, seconds=30, what="gunicorn", logs=[log_path])
    return process, base
