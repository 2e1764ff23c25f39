"""Write-once file caches under VAR_DIR: the dataset downloads (generation.catalog.services) and the
explorer's memory-mapped arrays (analysis.explorer.selectors).

An entry is a folder named by what it holds (a content version, a build's identity), so it never
changes once written: new content gets a new name, and nothing is ever stale, only unused. It is
written under a temporary name and renamed into place, so a reader never sees half-written files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

TEMPORARY_PREFIX = ".writing-"
LOCK_PREFIX = ".lock-"
# A temporary folder older than this was left by a process that died while writing it.
ABANDONED_SECONDS = 3600


def filecache_root(*, name: str) -> Path:
    return Path(settings.VAR_DIR) / name


@contextmanager
def _locked(root: Path, lock: str | None) -> Iterator[None]:
    if lock is None:
        yield
        return
    with open(root / f"{LOCK_PREFIX}{lock}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def filecache_entry_get_or_build(
    *, root: Path, key: str, build: Callable[[Path], None], lock: str | None = None
) -> tuple[Path, bool]:
    """The folder root/key and whether this call built it: if it does not exist yet, `build(folder)`
    fills a temporary folder that is then renamed to it.

    With `lock` (a name), callers building under the same lock wait for each other, so parallel
    first requests for an expensive entry build it once. Without, each builds its own copy and the
    first rename wins; the others' copies are dropped."""
    entry = root / key
    if entry.is_dir():
        return entry, False
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root, lock):
        if entry.is_dir():  # built while this one waited for the lock
            return entry, False
        temporary = Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=root))
        try:
            build(temporary)
            try:
                os.rename(temporary, entry)
            except OSError:
                if not entry.is_dir():
                    raise
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return entry, True


def filecache_prune(*, root: Path, keep: Callable[[str], bool]) -> None:
    """Removes the entries whose name `keep` rejects (files too, as left by older layouts), and
    temporary folders abandoned mid-write. A process still reading a removed entry's open or
    memory-mapped files keeps them until it closes them."""
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name.startswith(LOCK_PREFIX):
            continue
        if entry.name.startswith(TEMPORARY_PREFIX):
            try:
                abandoned = time.time() - entry.stat().st_mtime > ABANDONED_SECONDS
            except FileNotFoundError:
                continue
            if not abandoned:
                continue
        elif keep(entry.name):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
