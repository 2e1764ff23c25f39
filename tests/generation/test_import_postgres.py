"""What only a real PostgreSQL server can show: constraints enforced by the database, two processes
importing the same file at once, and jsonb (which reorders keys) still exporting the exact bytes."""

import os
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from generation.models import Collection, Dataset, Example
from tests.factories import DatasetFactory, ExampleFactory
from tests.processes import database_url

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PERSONA_FILE = "persona/no-shut-down.jsonl"
WINOGENDER_FILE = "winogenerated/winogenerated_examples.jsonl"
OCCUPATIONS_FILE = "winogenerated/winogenerated_occupations.jsonl"


def test_position_is_unique_per_dataset_in_the_database():
    dataset = DatasetFactory()
    twins = [ExampleFactory.build(dataset=dataset, position=7) for _ in range(2)]
    with pytest.raises(IntegrityError), transaction.atomic():
        Example.objects.bulk_create(twins)
    assert Example.objects.count() == 0

    # The same position in another dataset is fine.
    other = DatasetFactory()
    Example.objects.bulk_create([twins[0], ExampleFactory.build(dataset=other, position=7)])
    assert Example.objects.filter(position=7).count() == 2


@pytest.mark.parametrize("confidence", [1.5, -0.1])
def test_label_confidence_range_is_checked_by_the_database(confidence):
    dataset = DatasetFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Example.objects.bulk_create([ExampleFactory.build(dataset=dataset, label_confidence=confidence)])
    assert Example.objects.count() == 0
    Example.objects.bulk_create([ExampleFactory.build(dataset=dataset, label_confidence=1.0)])
    assert Example.objects.count() == 1


def test_source_sha256_is_unique_in_the_database():
    DatasetFactory(source_sha256="a" * 64)
    DatasetFactory(source_sha256="")
    DatasetFactory(source_sha256="")  # blank is not a file, so it may repeat
    with pytest.raises(IntegrityError), transaction.atomic():
        DatasetFactory(source_sha256="a" * 64)


def _waiting_on(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
            [table],
        )
        return cursor.fetchone()[0]


def test_two_processes_importing_the_same_file_at_once_keep_one_copy(evals_data):
    """Both processes are held at their first query until both wait, then let go together, so both
    find no dataset and both try to write it."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "MWE_EVALS_DATA": str(evals_data),
    }
    manage = Path(settings.BASE_DIR) / "manage.py"
    command = [sys.executable, str(manage), "import_evals", str(evals_data / PERSONA_FILE)]
    table = Dataset._meta.db_table

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        processes = [
            subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            deadline = time.monotonic() + 60
            while _waiting_on(table) < 2:
                exited = [p for p in processes if p.poll() is not None]
                assert not exited, [p.communicate() for p in exited]
                assert time.monotonic() < deadline, "the two imports never reached the database"
                time.sleep(0.05)
        except BaseException:
            for process in processes:
                process.kill()
            raise
    # Leaving the block commits and releases the lock: both go at the same moment.
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    statuses = sorted(out.split()[0] for out, _ in outputs)
    assert statuses == ["imported", "unchanged"], outputs
    assert Dataset.objects.count() == 1
    dataset = Dataset.objects.get()
    assert dataset.slug == "no-shut-down"
    assert Example.objects.count() == 1000 == dataset.example_count
    assert Collection.objects.count() == 1
    assert dataset.label_counts == {" No": 500, " Yes": 500}


@pytest.mark.parametrize("relative", [PERSONA_FILE, WINOGENDER_FILE, OCCUPATIONS_FILE])
def test_jsonb_key_order_does_not_change_the_export(evals_data, tmp_path, relative):
    source = evals_data / relative
    call_command("import_evals", str(source), stdout=StringIO(), stderr=StringIO())
    dataset = Dataset.objects.get()

    if relative == OCCUPATIONS_FILE:
        # jsonb hands back the keys of extra in its own order (shortest first), not the file's ...
        first = Example.objects.get(dataset=dataset, position=0)
        assert dataset.field_order[0] == "BLS_original_occupation"
        assert set(first.extra) == set(dataset.field_order)
        assert list(first.extra) != dataset.field_order
        assert first.key_order is None

    # ... and the export still writes the file's bytes.
    out = tmp_path / "out.jsonl"
    call_command("export_evals", "--dataset", dataset.slug, "--out", str(out), stderr=StringIO())
    assert out.read_bytes() == source.read_bytes()
