"""`python -m bench.drift`: every stream through a fresh loopserve and through the baselines,
then RESULTS.md and a plot per stream (see bench/README.md, "Drift benchmark")."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from bench.drift import analysis, baselines, loop, plot, report, streams
from bench.drift.server import DriveError

RAW = report.ROOT / "var" / "drift"  # git-ignored: per-row results for re-analysis
DEFAULT_OUT = report.ROOT / "bench" / "drift"


def log(message: str) -> None:
    print(message, flush=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.drift", description=__doc__)
    p.add_argument(
        "--streams",
        default=",".join(streams.STREAMS),
        help=f"comma-separated, of {', '.join(streams.STREAMS)}",
    )
    p.add_argument("--rows", type=int, default=20000, help="stream rows per stream")
    p.add_argument("--initial", type=int, default=2000, help="labelled rows before the stream")
    p.add_argument("--pace", type=float, default=100.0, help="labelled rows/s (0: no pacing)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="RESULTS.md and plots; default bench/drift for a full run, var/drift/quick otherwise",
    )
    p.add_argument("--baselines-only", action="store_true", help="do not start loopserve")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="re-render RESULTS.md and plots from the raw results of the last run",
    )
    args = p.parse_args(argv)
    args.names = [s.strip() for s in args.streams.split(",") if s.strip()]
    unknown = [s for s in args.names if s not in streams.STREAMS]
    if unknown:
        p.error(f"unknown stream(s) {unknown}; known: {list(streams.STREAMS)}")
    return args


def is_full(args: argparse.Namespace) -> bool:
    """Only a run of every stream at the default sizes replaces bench/drift/RESULTS.md."""
    return (
        sorted(args.names) == sorted(streams.STREAMS)
        and args.rows == 20000
        and args.initial == 2000
    )


def run_stream(stream: streams.Stream, args: argparse.Namespace, raw_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    truth = [stream.y(r) for r in stream.rows]
    log(
        f"{stream.name}: {len(stream.initial):,} initial + {len(stream.rows):,} stream rows, "
        f"changes {[c.start for c in stream.changes]}"
    )
    log(" baselines")
    with threadpool_limits(1):  # OpenMP spinning on a shared 2-core box costs more than it gives
        learners = baselines.run_all(stream, log=log)
    loop_error = None
    if not args.baselines_only:
        log(" loopserve")
        try:
            learners = {
                analysis.LOOP: loop.run_stream(
                    stream, pace=args.pace, batch=loop.BATCH, logs=raw_dir / "logs", log=log
                ),
                **learners,
            }
        except DriveError as exc:
            loop_error = str(exc)
            log(f"  loopserve run failed: {exc}")
    raw = {
        "stream": {
            "name": stream.name,
            "task": stream.task,
            "target": stream.target,
            "features": stream.features,
            "description": stream.description,
            "changes": [vars(c) for c in stream.changes],
        },
        "truth": truth,
        "learners": learners,
        "loop_error": loop_error,
        "run": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": shlex.join([".venv/bin/python", "-m", "bench.drift", *sys.argv[1:]]),
            "commit": report.commit(),
            "machine": report.machine(),
            "rows": args.rows,
            "initial": args.initial,
            "batch": loop.BATCH,
            "pace": args.pace,
            "seed": args.seed,
            "baselines_only": args.baselines_only,
            "seconds": time.monotonic() - started,
        },
    }
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / f"{stream.name}.json").write_text(json.dumps(raw))
    log(f" {stream.name} done in {raw['run']['seconds']:.0f} s")
    return raw


def write(raws: list[dict[str, Any]], out: Path) -> list[dict[str, str]]:
    """Plots, RESULTS.md, and the targets for the console."""
    out.mkdir(parents=True, exist_ok=True)
    analyses = [analysis.analyse(raw) for raw in raws]
    for raw in raws:
        plot.plot(raw, out / f"{raw['stream']['name']}.png")
    meta = {
        **raws[-1]["run"],
        "stream_seconds": {r["stream"]["name"]: r["run"]["seconds"] for r in raws},
    }
    (out / "RESULTS.md").write_text(report.render(analyses, meta))
    return analysis.targets(analyses)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    full = is_full(args)
    raw_dir = RAW if full else RAW / "quick"
    out = args.out or (DEFAULT_OUT if full else raw_dir)
    if args.report_only:
        raws = [
            json.loads((raw_dir / f"{n}.json").read_text())
            for n in args.names
            if (raw_dir / f"{n}.json").exists()
        ]
        if not raws:
            log(f"no raw results under {raw_dir}")
            return 1
    else:
        raws = [
            run_stream(
                streams.make(n, seed=args.seed, initial=args.initial, rows=args.rows), args, raw_dir
            )
            for n in args.names
        ]
    for t in write(raws, out):
        log(f"{t['verdict']:<5} {t['stream']}: {t['target']}: {t['value']}")
    log(f"wrote {out / 'RESULTS.md'} and {len(raws)} plot(s); raw results in {raw_dir}")
    return 1 if any(r.get("loop_error") for r in raws) else 0


if __name__ == "__main__":
    sys.exit(main())
