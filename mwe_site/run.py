"""Runs the site's processes together and stops them together.

`make run` (the embedded default): the development web server and one Celery worker on both queues.

    python -m mwe_site.run [ADDRESS]

`make run-prod` (the production stack on one machine): the `release` line of a Procfile once (migrations,
static files), then every other line (gunicorn, the workers of each queue) as its own process.

    python -m mwe_site.run --procfile deploy/Procfile

Ctrl-C (or SIGTERM, or any process exiting) stops them all, so no orphaned worker keeps a broker or a
port busy.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

BASH = shutil.which("bash") or "/bin/bash"
PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile_read(path: Path) -> dict[str, str]:
    """The Procfile's process types in file order: name -> shell command."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PROCFILE_LINE.match(line)
        if match is None:
            raise SystemExit(f"{path}:{number}: not a Procfile line (name: command): {line!r}")
        if match.group(1) in processes:
            raise SystemExit(f"{path}:{number}: process type {match.group(1)!r} defined twice")
        processes[match.group(1)] = match.group(2)
    return processes


def supervise(commands: dict[str, list[str]]) -> int:
    """Starts every command, waits until one exits or Ctrl-C, then stops the others (SIGTERM, then
    SIGKILL after 10 s). Each runs in its own process group so a stop reaches its children too."""
    processes = {name: subprocess.Popen(argv, start_new_session=True) for name, argv in commands.items()}

    def stop(*_args) -> None:
        # SIGTERM to each program, not to its whole group: a Celery worker told alone stops its
        # pool itself (a warm shutdown), while a pool process killed under it is logged as
        # "ERROR ... exited with 'signal 15 (SIGTERM)'" on every normal Ctrl-C.
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # What a program left behind in its group when it exited (the development server's reloaded
        # child, a pool process of a worker killed above) goes too, so no port or broker stays busy.
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # Ctrl-C and SIGTERM only set a flag: a KeyboardInterrupt raised at an arbitrary point could
    # land inside Popen.poll() while it holds the Popen's wait lock, and stop()'s wait() would then
    # block on that lock for ever (a CI run saw the launcher outlive Ctrl-C by more than 30 s).
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_args: stopping.set())
    try:
        while not stopping.is_set() and all(process.poll() is None for process in processes.values()):
            stopping.wait(0.5)
        if stopping.is_set():
            return 0
        failed = [name for name, process in processes.items() if process.poll() not in (None, 0)]
        if failed:
            print(f"{', '.join(failed)} exited; stopping the rest.", file=sys.stderr, flush=True)
        return 1 if failed else 0
    finally:
        stop()


def run_embedded(address: str) -> int:
    python = sys.executable
    commands = {
        # One worker takes both queues: on one machine, the model work has nowhere else to go.
        "worker": [python, "-m", "celery", "-A", "mwe_site", "worker", "--loglevel=INFO", "--concurrency=1"]
        + ["-Q", "default,models"],
        "web": [python, "manage.py", "runserver", address],
    }
    print(f"Serving http://{address}/ with a Celery worker. Ctrl-C stops both.", flush=True)
    return supervise(commands)


def run_procfile(path: Path) -> int:
    processes = procfile_read(path)
    # The Procfile names programs (gunicorn, celery, python) as a deployment's PATH finds them; here
    # they are this interpreter's.
    env_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path
    release = processes.pop("release", None)
    if release is not None:
        print(f"release: {release}", flush=True)
        completed = subprocess.run([BASH, "-c", release], check=False)
        if completed.returncode != 0:
            print(f"release failed with status {completed.returncode}", file=sys.stderr, flush=True)
            return completed.returncode
    for name, command in processes.items():
        print(f"{name}: {command}", flush=True)
    # exec, so the process group's leader is the program itself and a stop reaches it directly.
    return supervise({name: [BASH, "-c", f"exec {command}"] for name, command in processes.items()})


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--procfile":
        if len(argv) != 3:
            raise SystemExit(f"usage: {argv[0]} --procfile PATH")
        return run_procfile(Path(argv[2]))
    address = argv[1] if len(argv) > 1 else os.environ.get("MWE_ADDRESS", "127.0.0.1:8000")
    return run_embedded(address)


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.local")
    sys.exit(main(sys.argv))
