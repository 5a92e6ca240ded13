"""Micro-batching on and off, measured back to back: is gathering the requests of one event-loop
turn into one ONNX call worth its extra loop turn?

Two `loopserve api` processes on the bench database, both with validation and the prediction
log on, one with LOOPSERVE_MICRO_BATCH=false. Each cell is measured on both in turn, the order
alternating over the rounds, with the same wrk as bench.run; the table gives the mean r/s and
p99 of the rounds.

Run: .venv/bin/python -m bench.microbatch   (after bench.run has set up wrk and the database)
"""

from __future__ import annotations

from bench.backtoback import Cell, Measured, compare
from bench.models import BenchModel


def _cells(models: list[BenchModel]) -> list[Cell]:
    cells = [(m, p, rows, 16) for m in models for p in ("v1", "v2") for rows in (1, 1000)]
    return [*cells, (models[0], "v1", 1, 1)]


def _row(cell: Cell, got: dict[str, Measured]) -> list[str]:
    on, off = got["on"], got["off"]
    gain = (on.rps / off.rps - 1) * 100
    return [
        f"{on.rps:,.0f}",
        f"{off.rps:,.0f}",
        f"{gain:+.1f} %",
        f"{on.p99_ms:.1f}",
        f"{off.p99_ms:.1f}",
    ]


def main() -> None:
    compare(
        {
            "on": {"prediction_log": True, "name": "loopserve-batch-on"},
            "off": {
                "prediction_log": True,
                "name": "loopserve-batch-off",
                "LOOPSERVE_MICRO_BATCH": "false",
            },
        },
        _cells,
        [
            "model",
            "protocol",
            "rows",
            "conc",
            "r/s on",
            "r/s off",
            "gain",
            "p99 on ms",
            "p99 off ms",
        ],
        _row,
    )


if __name__ == "__main__":
    main()
