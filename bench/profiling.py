"""py-spy profiles of the loopserve process under the load of a missed target: collapsed stacks
("raw", which speedscope opens) summed per function by own and by inclusive samples."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.config import LOOPSERVE_VENV
from bench.record import Load, Profile

_LINE = re.compile(r":\d+\)$")
# Leaves of threads that only wait (py-spy may count a timed wait as busy): left out.
_WAITS = {f"{w} (threading.py)" for w in ("Condition.wait", "Event.wait", "Thread.join")}
_WAITS.add("Queue.get (queue.py)")
# Frames every stack passes through, which say nothing of where the time goes.
_ROOTS = (
    *("Thread._bootstrap", "Thread.run (threading", "Runner.run (asyncio", "run (uvicorn/main"),
    *("Server.run (uvicorn", "asyncio_run (uvicorn", "cmd_api (", "main (cli", "<module> ("),
)


def summarize(raw: str, load: Load, path: str, top: int = 15) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_LINE.sub(")", f.strip()) for f in stack.split(";") if f.strip()]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        if frames[-1] in _WAITS:
            waiting += n
            continue
        total += n
        own[frames[-1]] += n
        inclusive.update({f: n for f in set(frames) if not f.startswith(_ROOTS)})
    if not total:
        return Profile(load, path, 0, waiting=waiting, error="no samples")
    own_top, incl_top = (
        [(f, 100.0 * n / total) for f, n in c.most_common(top)] for c in (own, inclusive)
    )
    return Profile(load, path, total, own_top, incl_top, waiting)


def profile_under_load(
    pid: int,
    load: Load,
    drive: Callable[..., object],
    seconds: float,
    out: Path,
    lead: float = 1.5,
    pyspy: Path = LOOPSERVE_VENV / "bin" / "py-spy",
) -> Profile:
    """Run `drive(seconds=...)` in a thread, the load for `seconds` plus margins, and sample
    `pid` for `seconds` once the load has run for `lead` seconds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    worker = threading.Thread(target=drive, kwargs={"seconds": seconds + 3.0}, daemon=True)
    worker.start()
    time.sleep(lead)
    cmd = [str(pyspy), "record", "--pid", str(pid), "--duration", str(round(seconds))]
    cmd += ["--rate", "100", "--format", "raw", "--output", str(out), "--nonblocking"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        error = "" if proc.returncode == 0 and out.exists() else proc.stderr or proc.stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = repr(exc)
    worker.join(seconds + 90)
    if error:
        return Profile(load, str(out), 0, error=error[-400:])
    return summarize(out.read_text(), load, str(out))
