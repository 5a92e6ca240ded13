"""Labelled rows from a CSV upload, typed by the model's spec (CSV cells are all text)."""

from __future__ import annotations

import csv
import io
from typing import Any

from api.errors import MalformedInput
from tuning.spec import ModelSpec

# What csv.DictReader puts in the columns a row has no cell for.
_NO_CELL: Any = object()


def parse_csv(spec: ModelSpec, text: str) -> list[dict[str, Any]]:
    """Rows with numeric features as floats and empty cells as missing (None).

    Unparseable numbers are kept as text so that validation names their row and field. A row
    with more or fewer cells than the header is refused: its cells would land in the wrong
    columns (an empty cell is how a value is missing).
    """
    reader = csv.DictReader(io.StringIO(text), restval=_NO_CELL)
    try:
        return _rows(spec, reader)
    except csv.Error as exc:  # a cell over csv.field_size_limit(), a NUL byte, ...
        raise MalformedInput(f"CSV line {reader.line_num + 1}: {exc}", field="file") from exc


def _rows(spec: ModelSpec, reader: csv.DictReader[str]) -> list[dict[str, Any]]:
    if not reader.fieldnames:
        raise MalformedInput("the CSV has no header row", field="file")
    numeric = set(spec.numeric_features)
    if spec.task == "regression":
        numeric.add(spec.target)
    rows = []
    for record in reader:
        row: dict[str, Any] = {}
        for key, cell in record.items():
            if key is None:
                raise MalformedInput(
                    f"CSV line {reader.line_num} has more cells than the header", field="file"
                )
            if cell is _NO_CELL:
                raise MalformedInput(
                    f"CSV line {reader.line_num} has fewer cells than the header", field="file"
                )
            value = (cell or "").strip()
            if value == "":
                row[key] = None
            elif key in numeric:
                try:
                    row[key] = float(value)
                except ValueError:
                    row[key] = value
            else:
                row[key] = value
        rows.append(row)
    return rows
