"""py-spy profiles of the loopserve process under the load of a missed target.

py-spy samples the live process from outside (no code change, no restart) and writes collapsed
stacks ("raw" format, which speedscope and flamegraph.pl also open). The summary ranks
functions by own samples (where the CPU is) and by inclusive samples (which call paths cost).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import LOOPSERVE_VENV

_LINE = re.compile(r":\d+\)$")
# Leaves of threads that only wait (py-spy may count a timed wait as busy); left out.
_WAITS = (
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
    "Queue.get (queue.py)",
    "Thread.join (threading.py)",
)
# Frames every stack passes through; they say nothing about where the time goes.
_ROOTS = (
    "Thread._bootstrap",
    "Thread.run (threading",
    "Runner.run (asyncio",
    "run (uvicorn/main",
    "Server.run (uvicorn",
    "asyncio_run (uvicorn",
    "cmd_api (",
    "main (cli",
    "<module> (",
)


@dataclass
class Profile:
    """What a profile found: total samples and the top frames, each with its share."""

    label: str
    path: str
    samples: int
    own: list[tuple[str, float]] = field(default_factory=list)
    inclusive: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    waiting: int = 0  # samples of threads parked in a wait primitive, not counted

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": self.path,
            "samples": self.samples,
            "own": self.own,
            "inclusive": self.inclusive,
            "error": self.error,
            "waiting": self.waiting,
        }


def _frame(text: str) -> str:
    """'func (path/file.py:123)' -> 'func (path/file.py)': aggregate a function's lines."""
    return _LINE.sub(")", text.strip())


def summarize(raw: str, label: str, path: str, top: int = 15) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        if frames[-1] in _WAITS:
            waiting += n
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            if not f.startswith(_ROOTS):
                inclusive[f] += n
    if not total:
        return Profile(label, path, 0, error="no samples")
    share = [(f, 100.0 * n / total) for f, n in own.most_common(top)]
    incl = [(f, 100.0 * n / total) for f, n in inclusive.most_common(top)]
    return Profile(label, path, total, share, incl, waiting=waiting)


def profile_under_load(
    pid: int, load: Callable[[float], object], seconds: float, out: Path, label: str
) -> Profile:
    """Run `load` (seconds + margins) in a thread and sample `pid` for `seconds` meanwhile."""
    out.parent.mkdir(parents=True, exist_ok=True)
    worker = threading.Thread(target=load, args=(seconds + 3.0,), daemon=True)
    worker.start()
    time.sleep(1.5)
    cmd = [str(LOOPSERVE_VENV / "bin" / "py-spy"), "record", "--pid", str(pid)]
    cmd += ["--duration", str(round(seconds)), "--rate", "100", "--format", "raw"]
    cmd += ["--output", str(out), "--nonblocking"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    worker.join(seconds + 90)
    if proc.returncode != 0 or not out.exists():
        return Profile(label, str(out), 0, error=(proc.stderr or proc.stdout)[-400:])
    return summarize(out.read_text(), label, str(out))
