"""Every CSV file the annotation app writes goes through `csv_row`: a cell that starts like a formula
is written with a leading single quote, so a spreadsheet shows it as text instead of running it
(OWASP, "CSV injection"). Worker ids and other values in these files come from outside."""

from __future__ import annotations

from typing import Any

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
