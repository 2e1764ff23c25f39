"""Every package installed in the environment is pinned in the requirements files at the version
installed. A package installed by hand while developing, and not pinned, makes the tests pass here
and fail on a fresh machine; this test fails here first."""

import re
from importlib import metadata
from pathlib import Path

from django.conf import settings

FILES = ["requirements.txt", "requirements-dev.txt", "requirements-models.txt"]
# Installed by venv itself, not by our requirements.
TOOLING = {"pip", "setuptools", "wheel"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned() -> dict[str, str]:
    pins = {}
    for name in FILES:
        for line in (Path(settings.BASE_DIR) / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-r"):
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)", line)
            assert match, f"{name}: {line!r} is not pinned with =="
            pins[canonical(match.group(1))] = match.group(3)
    return pins


def test_every_installed_package_is_pinned_at_its_version():
    pins = pinned()
    problems = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in TOOLING:
            continue
        version = dist.version.split("+", 1)[0]  # torch's local label (+cpu) is not part of the pin
        if name not in pins:
            problems.append(f"{name}=={version} is installed but not pinned")
        elif pins[name] != version:
            problems.append(f"{name} is {version} here but pinned at {pins[name]}")
    assert not problems, "\n".join(sorted(problems))
