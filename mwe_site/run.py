"""`make run`: the web server and one Celery worker together, stopped together.

Ctrl-C (or either process exiting) stops both, so no orphaned worker keeps the broker file busy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else os.environ.get("MWE_ADDRESS", "127.0.0.1:8000")
    python = sys.executable
    processes = {
        "worker": subprocess.Popen(
            [python, "-m", "celery", "-A", "mwe_site", "worker", "--loglevel=INFO", "--concurrency=1"]
        ),
        "web": subprocess.Popen([python, "manage.py", "runserver", address]),
    }
    print(f"Serving http://{address}/ with a Celery worker. Ctrl-C stops both.", flush=True)

    def stop(*_args) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        failed = [name for name, process in processes.items() if process.poll() not in (None, 0)]
        if failed:
            print(f"{', '.join(failed)} exited; stopping the rest.", file=sys.stderr, flush=True)
        return 1 if failed else 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.local")
    sys.exit(main(sys.argv))
