"""Testing a data migration on rows written before it: the database is migrated back to the state
just before it, the test writes rows through that state's models, then migrates to the latest state
and checks what the migration did. Whatever happens, the database ends at the latest state again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@contextmanager
def migrated_back(
    *, app_label: str, name: str, cleanup: Callable[[], None]
) -> Iterator[tuple[Apps, Callable[[], None]]]:
    """Yields the models of migration `name` of `app_label` and a function that migrates to the latest
    state (call it once the old rows are written). `cleanup` deletes the test's rows afterwards, once
    the database is at the latest state again."""
    before = [(app_label, name)]
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        MigrationExecutor(connection).migrate(before)
        old = MigrationExecutor(connection).loader.project_state(before).apps
        yield old, lambda: MigrationExecutor(connection).migrate(latest)
    finally:
        MigrationExecutor(connection).migrate(latest)
        cleanup()
