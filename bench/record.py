"""What one run measured, typed: bench.run fills a `Run`, bench.report renders it, and
bench/work/results.json keeps it (msgspec JSON) so that a report can be rendered again."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import msgspec

from bench.config import Timing

Rule = Literal["min", "max", "cost", "count", "equal"]  # how a Target compares, see there
# Every server under test, in the order they start: key -> (label, protocols it serves).
SERVERS = {
    "floor": ("bare ASGI floor", ("v1", "v2")),
    "loopserve_log_on": ("loopserve, prediction log on", ("v1", "v2")),
    "loopserve_log_off": ("loopserve, prediction log off", ("v1", "v2")),
    "mlserver_single": ("MLServer, parallel_workers 0 (one process)", ("v2",)),
    "mlserver_default": ("MLServer, default parallel_workers (1 inference worker)", ("v2",)),
}


@dataclass(frozen=True)
class Wrk:
    """One wrk run; `rps` counts 2xx responses only."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def ok(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (
            f"{self.rps:.0f} r/s p50 {self.p50_ms:.2f} ms p99 {self.p99_ms:.2f} ms "
            f"non-2xx {self.non_2xx} sock {self.socket_errors}"
        )


@dataclass(frozen=True)
class Cell:
    """One server, protocol, model, rows per request and concurrency; wrk None is n/a."""

    server: str
    protocol: str
    model: str
    rows: int
    conc: int
    wrk: Wrk | None = None
    note: str = ""  # why n/a, or what else happened
    other_cores: float = 0.0  # other processes' average CPU meanwhile
    statuses: dict[str, int] = field(default_factory=dict)  # loopserve's non-2xx answers


@dataclass(frozen=True)
class Memory:
    server: str
    idle_mib: float
    after_mib: float
    processes: int


@dataclass(frozen=True)
class CallRate:
    """onnxruntime `run` in a tight loop, in-process."""

    model: str
    graph: str
    rows: int
    calls_per_s: float
    us_per_call: float


@dataclass(frozen=True)
class Stage:
    """Median µs of one stage of a request, in-process; protocol v1, v2 or floor."""

    model: str
    protocol: str
    rows: int
    stage: str
    us: float


@dataclass(frozen=True)
class Promotion:
    to_version: int
    status: int
    promote_ms: float
    served_after_ms: float  # until predict answered with the new version
    served_version: int | None


@dataclass(frozen=True)
class Swap:
    model: str
    steady: Wrk
    during: Wrk
    promotions: list[Promotion]
    side_failures: int  # failed predicts of the client that waits for each new version

    @property
    def failed(self) -> int:
        return self.during.non_2xx + self.during.socket_errors + self.side_failures


@dataclass(frozen=True)
class Feedback:
    model: str
    rows: int
    predict_seconds: float
    labels_sent: int
    batches_sent: int
    batches_total: int
    acknowledged: int
    failed_batches: int
    seconds: float
    stored: int  # labelled_rows counted in the database afterwards
    errors: list[str] = field(default_factory=list)

    @property
    def labels_per_s(self) -> float:
        return self.acknowledged / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Load:
    """The load behind a target, to profile when it is missed."""

    kind: Literal["predict", "feedback"]
    model: str
    protocol: str = ""
    rows: int = 0


@dataclass(frozen=True)
class Profile:
    load: Load
    path: str
    samples: int  # of busy threads
    own: list[tuple[str, float]] = field(default_factory=list)  # frame, % of samples
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    waiting: int = 0  # samples of threads parked in a wait, left out
    error: str = ""


@dataclass(frozen=True)
class Target:
    """A goal and its verdict. rule: "min" or "max" bound measured / reference, "cost" bounds
    1 - measured / reference from above, "count" bounds measured, "equal" wants
    measured == reference; a missing number makes the verdict None (n/a)."""

    name: str
    measured: float | None
    reference: float | None
    goal: float
    rule: Rule = "min"
    unit: str = "r/s"
    load: Load | None = None

    @property
    def ratio(self) -> float | None:
        if self.measured is None:
            return None
        if self.rule == "count":
            return self.measured
        if not self.reference:
            return None
        ratio = self.measured / self.reference
        return 1 - ratio if self.rule == "cost" else ratio

    @property
    def passed(self) -> bool | None:
        if self.rule == "equal":
            known = self.measured is not None and self.reference is not None
            return self.measured == self.reference if known else None
        ratio = self.ratio
        if ratio is None:
            return None
        return ratio >= self.goal if self.rule == "min" else ratio <= self.goal


@dataclass(frozen=True)
class Environment:
    nproc: int
    cpu: str
    mem_gib: float
    kernel: str
    python: str
    wrk: str
    postgres: str
    loopserve: dict[str, str]  # package versions
    mlserver: dict[str, str]


@dataclass
class Run:
    started: str  # UTC, minutes
    command: str
    timing: Timing
    code: str  # the last commit that changed loopserve's code
    dirty: list[str] = field(default_factory=list)  # its uncommitted changes
    environment: Environment | None = None
    models: dict[str, str] = field(default_factory=dict)  # name: description
    inprocess: list[CallRate] = field(default_factory=list)
    stages: list[Stage] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    swap: Swap | None = None
    feedback: Feedback | None = None
    profiles: list[Profile] | None = None  # None until the profile step ran
    errors: dict[str, str] = field(default_factory=dict)  # step: why it has no result
    notes: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def wrk(self, server: str, protocol: str, model: str, rows: int, conc: int) -> Wrk | None:
        """The measurement of a cell, None when it is missing or n/a."""
        key = (server, protocol, model, rows, conc)
        for c in self.cells:
            if (c.server, c.protocol, c.model, c.rows, c.conc) == key:
                return c.wrk
        return None

    def save(self, path: Path) -> None:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Run:
        return msgspec.json.decode(path.read_bytes(), type=cls)
