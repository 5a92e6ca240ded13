"""The targets and RESULTS.md, from a `Run`: numbers and verdicts only, as tables; what they
mean is in bench/README.md. `python -m bench.report` renders bench/work/results.json again."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

from bench.config import BUSY_CORES, CONCURRENCY, RESULTS, ROW_COUNTS, WORK
from bench.record import SERVERS, Cell, Load, Rule, Run, Target, Wrk

MLSERVERS = ("mlserver_single", "mlserver_default")
LOG_ON, LOG_OFF = "loopserve_log_on", "loopserve_log_off"
PATH_STAGES = (  # a request's own work; the log thread's serialisation runs beside it
    "parse JSON",
    "validate into columns",
    "ONNX run (with feeds)",
    "prediction ids",
    "encode",
)
LOG_STAGE = "log: serialise (log thread)"
FLOOR_STAGE = "floor app, whole request (same body)"
PATH = "request path"  # the sum of PATH_STAGES
MISS_STAGES = (*PATH_STAGES[:2], PATH, LOG_STAGE, FLOOR_STAGE)  # shown for a missed target
MISS_RPS = ("loopserve_log_on", "loopserve_log_off", "floor")


def _best(values: Iterable[float | None], *, lowest: bool = False) -> float | None:
    found = [v for v in values if v is not None]
    return (min(found) if lowest else max(found)) if found else None


def _rps(w: Wrk | None) -> float | None:
    return w.rps if w else None


def _p99(w: Wrk | None) -> float | None:
    return w.p99_ms if w else None


# Per model and protocol, loopserve (log on, c16) against a reference:
# (what, goal, rule, unit); the figures are in `targets` below, in this order.
PREDICT_TARGETS: list[tuple[str, float, Rule, str]] = [
    ("single-row r/s (c16) vs MLServer best single-process r/s", 3, "min", "r/s"),
    ("single-row r/s (c16) vs floor", 0.5, "min", "r/s"),
    ("single-row p99 (c16) vs MLServer's lowest p99", 0.5, "max", "ms"),
    ("1000-row r/s (c16) vs MLServer best", 1.2, "min", "r/s"),
    ("1000-row r/s (c16) vs floor", 0.8, "min", "r/s"),
    ("cost of the prediction log, 1-row r/s (c16)", 0.10, "cost", "r/s"),
    ("cost of the prediction log, 1000-row r/s (c16)", 0.10, "cost", "r/s"),
]


def _figures(run: Run, model: str, proto: str) -> list[tuple[float | None, float | None, Load]]:
    """(measured, reference, load) of each of PREDICT_TARGETS for one model and protocol."""

    def rps(server: str, rows: int, conc: int = 16, p: str = proto) -> float | None:
        return _rps(run.wrk(server, p, model, rows, conc))

    def p99(server: str, p: str = proto) -> float | None:
        return _p99(run.wrk(server, p, model, 1, 16))

    one, many = (Load("predict", model, proto, n) for n in ROW_COUNTS)
    return [
        (rps(LOG_ON, 1), _best(rps("mlserver_single", 1, c, "v2") for c in CONCURRENCY), one),
        (rps(LOG_ON, 1), rps("floor", 1), one),
        (p99(LOG_ON), _best((p99(s, "v2") for s in MLSERVERS), lowest=True), one),
        (rps(LOG_ON, 1000), _best(rps(s, 1000, 16, "v2") for s in MLSERVERS), many),
        (rps(LOG_ON, 1000), rps("floor", 1000), many),
        (rps(LOG_ON, 1), rps(LOG_OFF, 1), one),
        (rps(LOG_ON, 1000), rps(LOG_OFF, 1000), many),
    ]


def targets(run: Run) -> list[Target]:
    """Every target of the run, in the order of the report."""
    out: list[Target] = []
    for model, proto in itertools.product(run.models, ("v1", "v2")):
        figures = zip(PREDICT_TARGETS, _figures(run, model, proto), strict=True)
        for (what, goal, rule, unit), (got, ref, load) in figures:
            out.append(Target(f"{model} {proto}: {what}", got, ref, goal, rule, unit, load))
    if s := run.swap:
        what = "swap: failed requests during the swaps"
        out.append(Target(what, s.failed, None, 0, "count", "requests"))
        p99s = (s.during.p99_ms, s.steady.p99_ms)
        out.append(Target("swap: p99 during the swaps vs steady", *p99s, 2, "max", "ms"))
    if f := run.feedback:
        what = f"feedback: labels/s (batches of {run.timing.feedback_batch}, concurrent clients)"
        load = Load("feedback", f.model)
        out.append(Target(what, f.labels_per_s, 5000, 1, "min", "labels/s", load))
        what = "feedback: labelled_rows in the database vs acknowledged"
        out.append(Target(what, f.stored, f.acknowledged, 1, "equal", "rows"))
    return out


# --- rendering: one table renderer for every table ----------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):  # three digits or more
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.{1 + (abs(value) < 10)}f}"
    return str(value).replace("|", "/").replace("\n", " ")


def table(header: str, rows: Iterable[Sequence[object]], title: str = "") -> list[str]:
    """A Markdown table under an optional heading; `header` names the columns separated by
    " | ". In rows None is n/a, a float shows three digits or more, the rest shows as it is."""
    lines = [title, ""] if title else []
    lines += ["| " + header + " |", "|" + "---|" * len(header.split(" | "))]
    return [*lines, *("| " + " | ".join(map(_text, row)) + " |" for row in rows), ""]


def num(v: float | None) -> str | None:
    return None if v is None else f"{v:,.0f}"


def ms(v: float | None) -> str | None:
    return None if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def _target(t: Target) -> list[object]:
    """target, measured, reference, ratio, goal, verdict."""
    r, fmt = t.ratio, (ms if t.unit == "ms" else num)
    got, ref = fmt(t.measured), fmt(t.reference)
    if t.rule == "cost":
        ratio, goal = None if r is None else f"{100 * r:.1f} %", f"≤ {100 * t.goal:g} %"
    elif t.rule in ("count", "equal"):
        ratio = None if r is None else f"{r:g}"
        goal = "equal" if t.rule == "equal" else f"≤ {t.goal:g}"
    else:
        ratio = None if r is None else f"{r:.2f}x"
        goal = f"{'≤' if t.rule == 'max' else '≥'} {t.goal:g}x"
        got, ref = (x and f"{x} {t.unit}" for x in (got, ref))
    verdict = "n/a" if t.passed is None else ("**PASS**" if t.passed else "**MISS**")
    return [t.name, got, ref, ratio, goal, verdict]


def _wrk(w: Wrk | None, rows: int = 1) -> list[object]:
    """r/s, rows/s, p50, p99, max, non-2xx, socket errors."""
    if w is None:
        return [None] * 7
    latency = [ms(w.p50_ms), ms(w.p99_ms), ms(w.max_ms)]
    return [num(w.rps), num(w.rps * rows), *latency, w.non_2xx, w.socket_errors]


def _note(c: Cell) -> str:
    notes = [f"HTTP {k}: {v}" for k, v in c.statuses.items()] + ([c.note[:120]] if c.note else [])
    if c.other_cores > BUSY_CORES:
        notes.append(f"disturbed: other processes used {c.other_cores:.2f} cores")
    return "; ".join(notes)


Stages = dict[tuple[str, int], dict[tuple[str, str], float]]  # (model, rows): (protocol, stage): µs


def _stages(run: Run) -> Stages:
    """The stages' µs by model and rows, with the request path's sum per protocol."""
    out: Stages = {}
    for s in run.stages:
        out.setdefault((s.model, s.rows), {})[s.protocol, s.stage] = s.us
    for found in out.values():
        for p in ("v1", "v2"):
            if all((p, s) in found for s in PATH_STAGES):
                found[p, PATH] = sum(found[p, s] for s in PATH_STAGES)
    return out


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{100 * share:.1f} %"


def _head(run: Run) -> list[str]:
    out = [
        "# loopserve benchmark results",
        "",
        f"Run {run.started} (UTC), {run.elapsed_s / 60:.1f} min, with `{run.command}`. What each "
        "step does and how to read each table: bench/README.md.",
        "",
    ]
    if env := run.environment:
        dirty = f"plus uncommitted changes to {', '.join(run.dirty)}" if run.dirty else "clean"
        out += [
            "## Machine, code and models",
            "",
            f"- {env.nproc} cores ({env.cpu}), {env.mem_gib:.0f} GiB, {env.kernel}; Python "
            f"{env.python}; {env.wrk}; PostgreSQL {env.postgres}.",
            f"- loopserve code measured: {run.code} (the last commit to change api/, registry/, "
            f"tuning/, worker/, cli/ or pyproject.toml), {dirty}.",
            "- loopserve venv: " + ", ".join(f"{k} {v}" for k, v in env.loopserve.items()) + ".",
            "- MLServer venv: " + ", ".join(f"{k} {v}" for k, v in env.mlserver.items()) + ".",
            *[f"- `{name}`: {description}." for name, description in run.models.items()],
            "",
        ]
    return out


def _targets(run: Run, found: list[Target], stages: Stages) -> list[str]:
    counts = [sum(x.passed is v for x in found) for v in (True, False, None)]
    out = ["## Targets", "", "{} PASS, {} MISS, {} n/a.".format(*counts), ""]
    out += table("target | measured | reference | ratio | goal | verdict", map(_target, found))
    missed = []
    for x in found:
        if x.passed is False and x.load and x.load.kind == "predict":
            m, p, n = x.load.model, x.load.protocol, x.load.rows
            us = [stages.get((m, n), {}).get((p, k)) for k in MISS_STAGES]
            missed.append([x.name, *us, *(num(_rps(run.wrk(k, p, m, n, 16))) for k in MISS_RPS)])
    if missed:
        columns = ["target", *(f"{k} µs" for k in MISS_STAGES), *(f"r/s {k}" for k in MISS_RPS)]
        out += table(
            " | ".join(columns), missed, "## Missed targets: stage costs and r/s of their load"
        )
    return out


def _matrix(run: Run) -> list[str]:
    t = run.timing
    out = ["## Throughput and latency", ""]
    out += [f"wrk: {t.duration:g} s per cell after a {t.warmup:g} s warm-up.", ""]
    if disturbed := sum(c.other_cores > BUSY_CORES for c in run.cells):
        out += [f"**{disturbed} cell(s) measured while other processes used the CPU.**", ""]
    columns = "server | protocol | conc | r/s | rows/s | p50 ms | p99 ms | max ms | non-2xx"
    for model, n in itertools.product(run.models, ROW_COUNTS):
        cells = [c for c in run.cells if (c.model, c.rows) == (model, n)]
        rows = [
            [SERVERS[c.server][0], c.protocol, c.conc, *_wrk(c.wrk, n), _note(c)] for c in cells
        ]
        out += table(columns + " | socket err | note", rows, f"### {model}, {n} row(s) per request")
    log_cost = []
    for model, p, n, c in itertools.product(run.models, ("v1", "v2"), ROW_COUNTS, CONCURRENCY):
        on, off = (run.wrk(s, p, model, n, c) for s in (LOG_ON, LOG_OFF))
        cost = _percent(Target("", _rps(on), _rps(off), 0, "cost").ratio)
        p99s = [ms(_p99(on)), ms(_p99(off))]
        log_cost.append([model, p, n, c, num(_rps(on)), num(_rps(off)), cost, *p99s])
    out += table(
        "model | protocol | rows | conc | r/s log on | r/s log off | cost | p99 on | p99 off",
        log_cost,
        "## Prediction log on vs off (loopserve)",
    )
    memory = [
        [SERVERS[m.server][0], num(m.idle_mib), num(m.after_mib), m.processes] for m in run.memory
    ]
    return out + table(
        "server | RSS idle MiB | RSS after load MiB | processes", memory, "## Memory"
    )


def _inprocess(run: Run, stages: Stages) -> list[str]:
    out = table(
        "model | graph | rows | calls/s | µs per call",
        ([x.model, x.graph, x.rows, num(x.calls_per_s), x.us_per_call] for x in run.inprocess),
        "## In-process floor (no HTTP)",
    )
    out += ["## Where a request's CPU goes (in-process, median µs per call)", ""] if stages else []
    for (model, n), timed in stages.items():
        names = (*PATH_STAGES, PATH, LOG_STAGE, FLOOR_STAGE)
        rows = [[k, timed.get(("v1", k)), timed.get(("v2", k))] for k in names]
        out += table("stage | v1 µs | V2 µs", rows, f"### {model}, {n} row(s)")
    return out


def _scenarios(run: Run) -> list[str]:
    out = []
    if sw := run.swap:
        out += table(
            "phase | r/s | rows/s | p50 ms | p99 ms | max ms | non-2xx | socket err",
            [["steady", *_wrk(sw.steady)], ["during swaps", *_wrk(sw.during)]],
            f"## Swap under load ({sw.model}, v1 single-row predicts, c16)",
        )
        out += [f"Failed requests: {sw.failed}, {sw.side_failures} of them the side client's.", ""]
        promotions = [
            [p.to_version, p.status, num(p.promote_ms), num(p.served_after_ms), p.served_version]
            for p in sw.promotions
        ]
        columns = "to version | promote HTTP | promote ms | served after ms | served version"
        out += table(columns, promotions)
    if f := run.feedback:
        t = run.timing
        figures = {**asdict(f), "labels_per_s": f.labels_per_s, "batch": t.feedback_batch}
        figures |= {"clients": t.feedback_clients, "errors": "; ".join(f.errors) or "none"}
        out += table("figure | value", figures.items(), "## Feedback ingest")
    if run.errors:
        out += table("step | why it has no result", run.errors.items(), "## Steps that failed")
    return out


def _profiles(run: Run) -> list[str]:
    if run.profiles is None:
        return []
    out = ["## Profiles of missed targets", ""]
    out += [] if run.profiles else ["No target missed: no profile taken.", ""]
    for pr in run.profiles:
        out += [f"### {load_label(pr.load)}", ""]
        if pr.error:
            out += [f"py-spy failed: `{pr.error}`", ""]
            continue
        out += [f"{pr.samples} busy samples, {pr.waiting} waiting left out.", ""]
        out += table("own % | frame", [[share, f"`{f}`"] for f, share in pr.own])
        out += table("incl % | frame", [[share, f"`{f}`"] for f, share in pr.inclusive])
    return out


def render(run: Run) -> str:
    found, stages = targets(run), _stages(run)
    out = [*_head(run), *_targets(run, found, stages), *_matrix(run), *_inprocess(run, stages)]
    out += [*_scenarios(run), *_profiles(run)]
    if run.notes:
        out += ["## Notes", "", *[f"- {n}" for n in run.notes], ""]
    return "\n".join(out)


def load_label(load: Load) -> str:
    if load.kind == "feedback":
        return f"feedback ingest, {load.model}"
    return f"{load.protocol} predict, {load.model}, {load.rows} row(s) per request, c16, log on"


def main(argv: list[str] | None = None) -> int:
    """Render a saved run (default bench/work/results.json) to RESULTS.md or a given path."""
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else WORK / "results.json"
    target = Path(args[1]) if len(args) > 1 else RESULTS
    target.write_text(render(Run.load(source)))
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
