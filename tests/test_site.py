"""The site as a newcomer meets it: `make run`'s launcher, the demo loader and the settings."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from generation.models import Dataset
from tests.processes import child_commands, free_port, interrupt_and_wait


def site_env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(DJANGO_SETTINGS_MODULE="mwe_site.settings.local", MWE_VAR_DIR=str(tmp_path / "var"), **extra)
    return env


def test_run_serves_with_a_worker_and_ctrl_c_stops_both(tmp_path):
    env = site_env(tmp_path)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True
    )
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, "-m", "mwe_site.run", f"127.0.0.1:{port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    output: list[str] = []
    reader = threading.Thread(
        target=lambda: output.extend(line.decode(errors="replace") for line in launcher.stdout), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:  # noqa: S310
                    body = response.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert b"Catalog" in body
        # The worker must have connected to the embedded broker and be consuming, not merely started.
        while time.monotonic() < deadline and not any(" ready." in line for line in output):
            time.sleep(0.5)
        assert any(" ready." in line for line in output), "".join(output)[-3000:]
        commands = child_commands(launcher)
        assert any("celery" in c and "worker" in c for c in commands), commands
        assert any("runserver" in c for c in commands), commands
        interrupt_and_wait(launcher, seconds=30)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)


@pytest.mark.django_db
def test_load_demo_imports_the_release_once(evals_data, settings):
    settings.MWE_EVALS_DATA = evals_data
    out = StringIO()
    call_command("load_demo", stdout=out)
    count = Dataset.objects.count()
    assert count == len(list(evals_data.rglob("*.jsonl")))
    out = StringIO()
    call_command("load_demo", stdout=out)
    assert Dataset.objects.count() == count
    assert f"{count} unchanged" in out.getvalue()


@pytest.mark.django_db
def test_load_demo_without_data_queues_a_demo_generation_once(tmp_path, settings, monkeypatch):
    from generation.jobs import services as jobs
    from generation.models import GenerationRun, Job

    ran = []
    # The model work is tested elsewhere.
    monkeypatch.setitem(jobs.JOB_HANDLERS, Job.Kind.GENERATE, ran.append)
    settings.MWE_EVALS_DATA = tmp_path / "missing"
    out = StringIO()
    call_command("load_demo", stdout=out)
    run = GenerationRun.objects.get()
    assert run.slug == "demo-power-seeking" and run.job.kind == Job.Kind.GENERATE
    assert "import_evals" in out.getvalue() and f"/generations/{run.pk}/" in out.getvalue()
    call_command("load_demo", stdout=StringIO())
    assert GenerationRun.objects.count() == 1


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "x" * 50}, "DATABASE_URL"),
        ({"SECRET_KEY": "x" * 50, "DATABASE_URL": "postgres://u@h/db"}, "CELERY_BROKER_URL"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
    ],
)
def test_production_settings_refuse_to_start_misconfigured(tmp_path, env, message):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=settings.BASE_DIR,
        env={
            **site_env(tmp_path),
            "DJANGO_SETTINGS_MODULE": "mwe_site.settings.production",
            "SECRET_KEY": "",
            **env,
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env={
            **site_env(tmp_path),
            "DJANGO_SETTINGS_MODULE": "mwe_site.settings.production",
            "SECRET_KEY": "k8#Jd93-x" * 6,
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/mwe",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "ALLOWED_HOSTS": "evals.example.org",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
