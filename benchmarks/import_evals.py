"""Import speed: the full import of every released file (parse, validate, detect, write, stats)
against the floor of reading the same files with a bare `json.loads` per line, in one process.

    .venv/bin/python benchmarks/import_evals.py            # SQLite in a temporary folder
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/import_evals.py

Prints seconds for both and their ratio (timings on shared machines are noisy; compare ratios).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from generation.catalog.services import evals_file_paths, evals_import
    from generation.models import Example

    data = Path(settings.MWE_EVALS_DATA)
    files = evals_file_paths(paths=[data])
    if not files:
        sys.exit(f"no released data at {data}; set MWE_EVALS_DATA")
    if connection.vendor == "postgresql":
        # A throwaway database so the benchmark never touches real data.
        from django.test.utils import setup_databases, teardown_databases

        old = setup_databases(verbosity=0, interactive=False)
    else:
        call_command("migrate", verbosity=0)
        old = None
    try:
        started = time.perf_counter()
        lines = 0
        for path in files:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    json.loads(line)
                    lines += 1
        bare = time.perf_counter() - started

        started = time.perf_counter()
        results = evals_import(paths=[data])
        full = time.perf_counter() - started
        assert all(r.status == "imported" for r in results), [
            r.message for r in results if r.status != "imported"
        ]
        assert Example.objects.count() == lines

        started = time.perf_counter()
        again = evals_import(paths=[data])
        unchanged = time.perf_counter() - started
        assert all(r.status == "unchanged" for r in again)
    finally:
        if old is not None:
            teardown_databases(old, verbosity=0)

    print(f"database: {connection.vendor}")
    print(f"files: {len(files)}, records: {lines:,}, datasets: {len(results)}")
    print(f"bare json.loads of every line: {bare:.3f} s")
    print(f"full import (validate + write + stats): {full:.3f} s  ({lines / full:,.0f} records/s)")
    print(f"re-import of unchanged files: {unchanged:.3f} s")
    print(f"ratio full import / bare parse: {full / bare:.1f}x")


if __name__ == "__main__":
    main()
