"""Every CSV file the site writes goes through this module: a cell that starts like a formula is
written with a leading single quote, so a spreadsheet shows it as text instead of running it (OWASP,
"CSV injection"). Worker ids, names and other values in these files come from outside.

`csv_write` writes a whole file, `csv_lines` streams one; both put every row through `csv_row`."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

# What spreadsheets read as the start of a formula: = + - @, and a tab or carriage return before one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    return {key: csv_cell(value) for key, value in row.items()}


def csv_uncell(value: str) -> str:
    """A cell as `csv_cell` wrote it, back to its value (for reading this site's own exports)."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def csv_write(handle: TextIO, *, fieldnames: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """A header line, then each row's cells made safe, into `handle` (a file opened with
    newline="", an HttpResponse or a StringIO)."""
    writer = csv.DictWriter(handle, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(csv_row(row) for row in rows)


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(*, fieldnames: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The same file as `csv_write`, one line at a time (for a streaming response)."""
    writer = csv.DictWriter(_Echo(), fieldnames=fieldnames)
    yield writer.writeheader()
    for row in rows:
        yield writer.writerow(csv_row(row))
