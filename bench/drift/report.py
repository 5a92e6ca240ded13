"""RESULTS.md of the drift benchmark: the run, the targets, a table and a plot per stream."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.drift import analysis

ROOT = Path(__file__).resolve().parents[2]

DEFINITIONS = """\
Every learner is scored test-then-train on the same rows in the same order: it predicts a
batch of 100 stream rows before it may learn their labels. *overall*: the metric over all
stream rows (accuracy, or RMSE for regression). *after change*: the first 2,000 rows from the
first change (the start of a gradual or incremental one). *last 5k*: the last 5,000 rows.
*worst 500*: the worst 500-row window (step 100), at the row where it starts. *pre-change*: the
2,000 rows before the change, the learner's own level. *recover*: rows from the change to the
end of the first 500-row window (starting at the change, step 100) back within 2 accuracy
points (RMSE: 10 %) of that level — 500 is the least possible; "never" if it does not get back;
not shown for an incremental change, which keeps moving. *oracle_refit* (abrupt changes only)
is a reference, not a baseline: told where the change is, it refits the periodic refit's
pipeline on the rows since the change alone, after every batch for 5,000 rows and every 1,000
rows after that; it is never the "best baseline".
loopserve's *promotions* and *detections* are audit-log events during the stream, placed at
the row being served then (a promotion is also shown at the first row its version served);
*false alarms* are detections before the first change or on the stationary stream. A
promotion is *worse* when the replaced champion scores better than its successor on the 2,000
rows from the successor's first served row (both ONNX graphs replayed on the same rows; when
that is not possible, served windows before and after are compared instead)."""


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem = next(
        (
            int(line.split()[1]) // 1024
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    versions = ", ".join(f"{p} {_version(p)}" for p in ("scikit-learn", "river", "onnxruntime"))
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:,} MiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, {versions}"
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def commit() -> str:
    """The short HEAD, and whether tracked files differ from it (the code measured)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return f"{head} (with uncommitted changes)" if dirty else head


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _rows_text(items: list[dict[str, Any]], key: str = "row") -> str:
    if not items:
        return "none"
    shown = ", ".join(f"{i[key]:,}" for i in items[:12] if i.get(key) is not None)
    return f"{len(items)} ({shown}{', …' if len(items) > 12 else ''})"


def _stream_section(a: dict[str, Any]) -> list[str]:
    stream, task = a["stream"], a["stream"]["task"]
    f = lambda v: analysis.fmt(task, v)  # noqa: E731
    changes = (
        ", ".join(
            f"{c['kind']} at row {c['start']:,}"
            + (f" to {c['end']:,}" if c["end"] > c["start"] else "")
            for c in stream["changes"]
        )
        or "none"
    )
    features = ", ".join(f"{n} ({t[:3]})" for n, t in stream["features"].items())
    out = [
        f"## {stream['name']}",
        "",
        f"{stream['description']}; {task}, target `{stream['target']}`; features {features}; "
        f"change: {changes}.",
        "",
    ]
    if a.get("loop_error"):
        out += [f"**loopserve run failed:** {a['loop_error']}", ""]
    header = [
        "learner",
        "overall",
        "after change",
        "last 5k",
        "worst 500 (at row)",
        "pre-change",
        "recover",
        "seconds",
    ]
    rows = []
    moving = stream["changes"][0]["kind"] == "incremental" if stream["changes"] else False
    for name, m in a["learners"].items():
        worst = "—" if m["worst_at"] is None else f"{f(m['worst'])} ({m['worst_at']:,})"
        recover = (
            "—"
            if m["pre_change"] is None or moving
            else "never"
            if m["recover"] is None
            else f"{m['recover']:,}"
        )
        seconds = "—" if m.get("seconds") is None else f"{m['seconds']:.0f}"
        rows.append(
            [
                f"**{name}**" if name == analysis.LOOP else name,
                f(m["overall"]),
                f(m["after_change"]),
                f(m["last"]),
                worst,
                f(m["pre_change"]),
                recover,
                seconds,
            ]
        )
    out += _table(header, rows)
    loop = a.get("loop")
    if loop is not None:
        worse = loop["worse_promotions"]
        compared = (
            ", ".join(
                f"v{c['previous_version']}→v{c['version']} from row {c['from_row']:,}: "
                f"{f(c['old'])} → {f(c['new'])}"
                for c in loop["compared"][:8]
            )
            or "none"
        )
        lag = loop["lag_max"]
        out += [
            f"loopserve: promotions {_rows_text(loop['promotions'])}; detected changes "
            f"{_rows_text(loop['detections'])}; false alarms {len(loop['false_alarms'])}; "
            f"promotions worse than the champion they replaced: {len(worse)} of "
            f"{len(loop['compared'])} compared ({compared}). First version serving after "
            f"{loop['setup_seconds'] or 0:.0f} s; largest lag behind the pace "
            f"{0 if lag is None else lag:.2f} s. Audit events during the stream: "
            + (", ".join(f"{k} {v}" for k, v in sorted(loop["event_counts"].items())) or "none")
            + (
                "."
                if not loop["events_truncated"]
                else "; the audit log answered its limit of "
                "200 events, so the oldest may be missing."
            )
            + (f" Replay failed: {loop['replay_error']}." if loop["replay_error"] else "")
            + (
                f" {loop['tracebacks']} traceback(s) in the server's log."
                if loop["tracebacks"]
                else ""
            ),
            "",
        ]
    out += [f"![{stream['name']}]({stream['name']}.png)", ""]
    return out


def render(analyses: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [
        "# Drift benchmark: loopserve's loop against baselines",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- loopserve commit: {meta['commit']}",
        f"- machine: {meta['machine']}",
        f"- run: {meta['rows']:,} stream rows after {meta['initial']:,} initial ones per stream, "
        f"batches of {meta['batch']}, {meta['pace']:g} labelled rows/s, seed {meta['seed']}"
        + ("; **baselines only** (loopserve not run)" if meta["baselines_only"] else ""),
        "- wall time per stream (s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in meta["stream_seconds"].items()),
        "",
        "## Targets",
        "",
    ]
    out += _table(
        ["stream", "target", "value", "verdict"],
        [[t["stream"], t["target"], t["value"], t["verdict"]] for t in analysis.targets(analyses)],
    )
    out += ["## Definitions", "", DEFINITIONS, ""]
    for a in analyses:
        out += _stream_section(a)
    return "\n".join(out).rstrip() + "\n"
