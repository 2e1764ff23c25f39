"""`make run`'s launcher (mwe_site.run) stopped the way a person stops it: Ctrl-C in the terminal. A
normal stop says nothing alarming: no ERROR line, no worker process reported killed by SIGTERM."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
from django.conf import settings

from tests.processes import free_port


def test_ctrl_c_stops_the_site_without_an_error_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="mwe_site.settings.local", MWE_VAR_DIR=str(tmp_path / "var"))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True
    )
    port = free_port()
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "mwe_site.run", f"127.0.0.1:{port}"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    try:
        deadline = time.monotonic() + 90
        served = False
        while time.monotonic() < deadline and not served:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2):  # noqa: S310
                    served = True
            except OSError:
                time.sleep(0.5)
        # The worker's pool process must exist before the stop, or there is nothing it could report.
        while time.monotonic() < deadline and " ready." not in stderr.read_text() + stdout.read_text():
            time.sleep(0.5)
        assert served and " ready." in stderr.read_text() + stdout.read_text(), stderr.read_text()[-3000:]
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert any("celery" in " ".join(c.cmdline()) for c in children)

        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's foreground group
        assert launcher.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    output = stdout.read_text() + stderr.read_text()
    assert "Warm shutdown" in output  # the worker stopped itself, in order
    assert "SIGTERM" not in output
    assert "ERROR" not in output, output[-3000:]
