"""The concept detector alone: false alarms on stationary error streams and delay on real rises.

`python -m bench.drift.alarms` replays seeded error streams through tuning.drift's detector
with the spec's default settings, as the monitor does, and writes bench/drift/ALARMS.md.
Stationary streams: 0/1 errors at several rates and absolute Gaussian errors (a regressor),
20,000 rows each. Rises: the error jumps at row 5,000 by several sizes; the delay is the rows
from the jump to the detection, the placement error is |estimated start - 5,000|.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tuning.drift import find_concept_change
from tuning.spec import DriftSettings

ROWS = 20_000
JUMP_AT = 5_000
STATIONARY = [("0/1, p=0.05", 0.05), ("0/1, p=0.15", 0.15), ("0/1, p=0.35", 0.35)]
RISES = [(0.05, 0.50), (0.10, 0.25), (0.10, 0.15), (0.20, 0.25)]


def _detect(errors: np.ndarray, settings: DriftSettings) -> int | None:
    found = find_concept_change(errors, delta=settings.delta, min_rows=settings.min_rows)
    return None if found is None else found.position


def run(seeds: int) -> str:
    settings = DriftSettings()
    lines = [
        "# Concept detector: false alarms and delay",
        "",
        f"`python -m bench.drift.alarms --seeds {seeds}`; ADWIN (river) as the monitor runs it,"
        f" delta {settings.delta}, min_rows {settings.min_rows}; {ROWS:,} rows per stream.",
        "",
        "| stationary stream | streams | with an alarm | alarms per 10,000 rows |",
        "|---|---:|---:|---:|",
    ]
    cases = [*STATIONARY, ("abs. error of N(0,1) (regression)", None)]
    for name, rate in cases:
        alarms = 0
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            if rate is None:
                errors = np.abs(rng.normal(size=ROWS))
            else:
                errors = (rng.random(ROWS) < rate).astype(float)
            alarms += _detect(errors, settings) is not None
        per = alarms / (seeds * ROWS / 10_000)
        lines.append(f"| {name} | {seeds} | {alarms} | {per:.3f} |")
    lines += [
        "",
        f"| error rise at row {JUMP_AT:,} | detected | median delay (rows) | max delay |"
        " median placement error |",
        "|---|---:|---:|---:|---:|",
    ]
    for before, after in RISES:
        delays, misplaced = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(1000 + seed)
            errors = np.concatenate(
                [rng.random(JUMP_AT) < before, rng.random(ROWS - JUMP_AT) < after]
            ).astype(float)
            found = find_concept_change(errors, delta=settings.delta, min_rows=settings.min_rows)
            if found is not None and found.position >= JUMP_AT:
                delays.append(found.position - JUMP_AT)
                misplaced.append(abs(found.start - JUMP_AT))
        median = f"{np.median(delays):.0f}" if delays else "—"
        worst = f"{max(delays)}" if delays else "—"
        placed = f"{np.median(misplaced):.0f}" if misplaced else "—"
        found_in = f"{len(delays)}/{seeds}"
        lines.append(f"| {before:.2f} → {after:.2f} | {found_in} | {median} | {worst} | {placed} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ALARMS.md"))
    args = parser.parse_args()
    start = time.monotonic()
    text = run(args.seeds)
    args.out.write_text(text + f"\n{time.monotonic() - start:.0f} s on this machine.\n")
    print(text)


if __name__ == "__main__":
    main()
