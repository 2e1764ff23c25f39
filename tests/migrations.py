"""Testing a data migration on rows written before it: the database is migrated back to the state
just before it, the test writes rows through that state's models, then migrates to the latest state
and checks what the migration did (and, for a reversible one, back again). Whatever happens, the
database ends at the latest state again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@dataclass(frozen=True)
class MigratedBack:
    """`apps`: the models as they were just before the migration under test, every other app as
    far as it is still applied. `forward()` migrates everything to the latest state; `back()` returns
    to the state the test started in (to check that undoing the migration restores the rows)."""

    apps: Apps
    forward: Callable[[], None]
    back: Callable[[], None]


@contextmanager
def migrated_back(*, app_label: str, name: str, cleanup: Callable[[], None]) -> Iterator[MigratedBack]:
    """Migrates `app_label` back to its migration `name` (apps that depend on its later migrations
    go back with it; the others stay at their latest state) and yields their models. `cleanup`
    deletes the test's rows afterwards, once the database is at the latest state again."""
    before = [(app_label, name)]
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()

    def back() -> None:
        MigrationExecutor(connection).migrate(before)

    try:
        back()
        loader = MigrationExecutor(connection).loader
        # The state of what is applied now, not only of `name`'s dependencies: another app's later
        # migrations may still be applied and their tables are what the test writes through.
        old = loader.project_state(sorted(loader.applied_migrations)).apps
        yield MigratedBack(apps=old, forward=lambda: MigrationExecutor(connection).migrate(latest), back=back)
    finally:
        MigrationExecutor(connection).migrate(latest)
        cleanup()
