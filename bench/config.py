"""Paths and fixed parameters of the bench, in one place so every module agrees on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"  # everything generated; git-ignored
MLSERVER_VENV = BENCH / ".venv-mlserver"
LOOPSERVE_VENV = ROOT / ".venv"
RESULTS = BENCH / "RESULTS.md"

MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22", "httptools"]

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "loopserve_bench"
DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
ADMIN_TOKEN = "bench-admin-token-7f3c9a2e41"

N_FEATURES = 30
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
CLASSES = ["0", "1"]
SEED = 20261128
BATCH_ROWS = 1000
BUSY_CORES = 0.25  # other processes' average CPU above which a cell is measured again
V1_FLOOR = "whole request, v1 body"  # the floor app's stage on the v1 body; "whole request": V2


@dataclass(frozen=True)
class Timing:
    """How long each load cell runs; `--quick` shrinks it for a smoke run."""

    warmup: float = 2.0
    duration: float = 8.0
    swap_seconds: float = 14.0
    swaps: int = 6
    profile_seconds: float = 8.0
    feedback_rows: int = 20_000
    feedback_batch: int = 500
    feedback_clients: int = 4
    feedback_seconds: float = 45.0  # the label posting stops sending new batches after this
    max_profiles: int = 5

    @classmethod
    def quick(cls) -> Timing:
        return cls(
            warmup=0.5,
            duration=2.0,
            swap_seconds=6.0,
            swaps=4,
            profile_seconds=3.0,
            feedback_rows=4000,
            feedback_seconds=15.0,
            max_profiles=2,
        )
