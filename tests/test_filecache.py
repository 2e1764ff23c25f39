"""mwe_site.filecache, the write-once caches behind the dataset downloads and the explorer's arrays:
an entry appears whole or not at all, is built once, and pruning keeps what is asked, leaving
folders being written alone until they are abandoned."""

import os
import time

import pytest

from mwe_site.filecache import (
    ABANDONED_SECONDS,
    filecache_entry_get_or_build,
    filecache_prune,
    filecache_root,
)


def test_an_entry_is_built_once_and_read_from_then_on(isolated_var_dir):
    root = filecache_root(name="things")
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "a.txt").write_text("a")

    first, built = filecache_entry_get_or_build(root=root, key="v1", build=build, lock="things")
    again, built_again = filecache_entry_get_or_build(root=root, key="v1", build=build)
    assert (built, built_again) == (True, False) and len(calls) == 1
    assert first == again == isolated_var_dir / "things" / "v1"
    assert (first / "a.txt").read_text() == "a"


def test_a_failed_build_leaves_nothing(isolated_var_dir):
    root = filecache_root(name="things")

    def build(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        filecache_entry_get_or_build(root=root, key="v1", build=build)
    assert [p.name for p in root.iterdir()] == []


def test_pruning_keeps_what_is_asked_and_folders_still_being_written(isolated_var_dir):
    root = filecache_root(name="things")
    for key in ("keep", "drop"):
        filecache_entry_get_or_build(root=root, key=key, build=lambda folder: None)
    (root / "old-layout-file.jsonl").write_text("x")
    writing = root / ".writing-now"
    abandoned = root / ".writing-long-ago"
    writing.mkdir()
    abandoned.mkdir()
    long_ago = time.time() - ABANDONED_SECONDS - 10
    os.utime(abandoned, (long_ago, long_ago))
    filecache_prune(root=root, keep=lambda name: name == "keep")
    assert sorted(p.name for p in root.iterdir()) == [".writing-now", "keep"]
