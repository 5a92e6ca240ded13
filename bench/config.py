"""Paths and fixed parameters of the bench, in one place so every module agrees on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "work"  # everything generated; git-ignored
MLSERVER_VENV = ROOT / "bench" / ".venv-mlserver"
LOOPSERVE_VENV = ROOT / ".venv"
RESULTS = ROOT / "bench" / "RESULTS.md"

MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22", "httptools"]
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DB_NAME = "loopserve_bench"
DB_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{DB_NAME}"
ADMIN_TOKEN = "bench-admin-token-7f3c9a2e41"

N_FEATURES = 30
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
CLASSES = ["0", "1"]
SEED = 20261128
ROW_COUNTS = (1, 1000)  # rows per request
CONCURRENCY = (1, 16)
BUSY_CORES = 0.25  # other processes' average CPU above which a cell is measured again


@dataclass(frozen=True)
class Timing:
    """How long each load step runs; `--quick` shrinks it for a smoke run."""

    warmup: float = 2.0
    duration: float = 8.0
    swap_seconds: float = 14.0
    swaps: int = 6
    profile_seconds: float = 8.0
    feedback_rows: int = 20_000
    feedback_batch: int = 500
    feedback_clients: int = 4
    feedback_seconds: float = 45.0  # no new label batch is sent after this
    max_profiles: int = 5


QUICK = Timing(
    warmup=0.5,
    duration=2.0,
    swap_seconds=6.0,
    swaps=4,
    profile_seconds=3.0,
    feedback_rows=4000,
    feedback_seconds=15.0,
    max_profiles=2,
)


def path(protocol: str, model: str) -> str:
    """The predict route of a protocol: loopserve's v1, or the V2 (Open Inference) one."""
    return f"/v1/models/{model}/predict" if protocol == "v1" else f"/v2/models/{model}/infer"
