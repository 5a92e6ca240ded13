"""How much CPU went to processes outside the measurement while a cell ran.

The bench shares 2 cores with whatever else runs on the machine (a test suite, a build). Busy
CPU from /proc/stat minus the CPU of the processes under test (the server tree, this harness and
its wrk children, PostgreSQL) is the disturbance; a cell with too much of it is measured again.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle


def proc_ticks(pid: int) -> tuple[str, int]:
    """A process's name and the CPU clock ticks it has used (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat.rsplit(")", 1)[1].split()
    return comm, int(rest[11]) + int(rest[12])  # utime + stime


def postgres_pids() -> list[int]:
    """Every PostgreSQL process: the backends, the WAL writer, the checkpointer and the rest."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _self_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk runs, once waited for
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class CpuWatch:
    """Started before a cell, read after it: cores used by everything else on average."""

    def __init__(self, server_pids: Callable[[], list[int]]) -> None:
        self._server_pids = server_pids
        self._t0 = time.monotonic()
        self._busy0 = _busy_ticks()
        self._self0 = _self_seconds()
        self._procs0 = {p: proc_ticks(p)[1] for p in self._pids()}

    def _pids(self) -> list[int]:
        return [*self._server_pids(), *postgres_pids()]

    def other_cores(self) -> float:
        elapsed = time.monotonic() - self._t0
        busy = (_busy_ticks() - self._busy0) / TICK
        ours = _self_seconds() - self._self0
        for pid in self._pids():
            ours += max(0, proc_ticks(pid)[1] - self._procs0.get(pid, 0)) / TICK
        return max(0.0, busy - ours) / elapsed if elapsed > 0 else 0.0
