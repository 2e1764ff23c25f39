"""The versions of the libraries a result depends on, recorded with it (a model's info, an explorer
build) so that a difference between two results can be traced to an upgrade."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterable
from importlib import metadata


def library_versions(*, packages: Iterable[str]) -> dict[str, str]:
    """Python's version and each installed package's; packages not installed are left out."""
    versions = {"python": platform.python_version()}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions
