"""Targets and RESULTS.md from the results of one run (bench/work/results.json).

Kept apart from the run so the report can be re-rendered from a saved run:
`python -m bench.report` rewrites RESULTS.md from bench/work/results.json.
"""

from __future__ import annotations

import json
from typing import Any

from bench.config import BUSY_CORES, RESULTS, V1_FLOOR, WORK

SERVER_LABELS = {
    "loopserve_log_on": "loopserve, prediction log on",
    "loopserve_log_off": "loopserve, prediction log off",
    "mlserver_single": "MLServer, parallel_workers 0 (one process)",
    "mlserver_default": "MLServer, default parallel_workers (1 inference worker)",
    "floor": "bare ASGI floor",
}
MLSERVERS = ("mlserver_single", "mlserver_default")

Results = dict[str, Any]
Cell = dict[str, Any]


def cell(r: Results, server: str, protocol: str, model: str, rows: int, conc: int) -> Cell | None:
    """The measured cell, or None when it is missing or n/a."""
    for c in r.get("cells", []):
        if (c["server"], c["protocol"], c["model"], c["rows"], c["conc"]) == (
            server,
            protocol,
            model,
            rows,
            conc,
        ):
            return c if c["status"] == "ok" else None
    return None


def _target(
    text: str,
    measured: float | None,
    reference: float | None,
    goal: float,
    *,
    at_most: bool = False,
    unit: str = "r/s",
    profile: dict[str, Any] | None = None,
    ratio: float | None = None,
) -> dict[str, Any]:
    if ratio is None and measured is not None and reference:
        ratio = measured / reference
    ok = None if ratio is None else (ratio <= goal if at_most else ratio >= goal)
    return {
        "text": text,
        "measured": measured,
        "reference": reference,
        "ratio": ratio,
        "goal": f"{'≤' if at_most else '≥'} {goal:g}",
        "unit": unit,
        "pass": ok,
        "profile": profile if ok is False else None,
    }


def _best(values: list[float | None], *, lowest: bool = False) -> float | None:
    found = [v for v in values if v is not None]
    if not found:
        return None
    return min(found) if lowest else max(found)


def _rps(c: Cell | None) -> float | None:
    return c["rps"] if c else None


def _p99(c: Cell | None) -> float | None:
    return c["p99_ms"] if c else None


def targets(r: Results) -> list[dict[str, Any]]:
    """Every target as a row: measured, reference, ratio, goal, PASS/MISS (None: n/a)."""
    out: list[dict[str, Any]] = []
    for model in r.get("models", []):
        for proto in ("v1", "v2"):
            one = cell(r, "loopserve_log_on", proto, model, 1, 16)
            batch = cell(r, "loopserve_log_on", proto, model, 1000, 16)
            single_spec = {"kind": "predict", "protocol": proto, "model": model, "rows": 1}
            batch_spec = {**single_spec, "rows": 1000}
            ml_single = _best(
                [_rps(cell(r, "mlserver_single", "v2", model, 1, c)) for c in (1, 16)]
            )
            floor_one = _rps(cell(r, "floor", proto, model, 1, 16))
            ml_p99 = _best([_p99(cell(r, s, "v2", model, 1, 16)) for s in MLSERVERS], lowest=True)
            ml_batch = _best([_rps(cell(r, s, "v2", model, 1000, 16)) for s in MLSERVERS])
            floor_batch = _rps(cell(r, "floor", proto, model, 1000, 16))
            name = f"{model} {proto}"
            out += [
                _target(
                    f"{name}: single-row r/s (c16) vs MLServer best single-process r/s",
                    _rps(one),
                    ml_single,
                    3,
                    profile=single_spec,
                ),
                _target(
                    f"{name}: single-row r/s (c16) vs floor",
                    _rps(one),
                    floor_one,
                    0.5,
                    profile=single_spec,
                ),
                _target(
                    f"{name}: single-row p99 (c16) vs MLServer's lowest p99",
                    _p99(one),
                    ml_p99,
                    0.5,
                    at_most=True,
                    unit="ms",
                    profile=single_spec,
                ),
                _target(
                    f"{name}: 1000-row r/s (c16) vs MLServer best",
                    _rps(batch),
                    ml_batch,
                    1.2,
                    profile=batch_spec,
                ),
                _target(
                    f"{name}: 1000-row r/s (c16) vs floor",
                    _rps(batch),
                    floor_batch,
                    0.8,
                    profile=batch_spec,
                ),
            ]
            for rows, spec in ((1, single_spec), (1000, batch_spec)):
                on = _rps(cell(r, "loopserve_log_on", proto, model, rows, 16))
                off = _rps(cell(r, "loopserve_log_off", proto, model, rows, 16))
                cost = None if on is None or not off else 1 - on / off
                out.append(
                    _target(
                        f"{name}: cost of the prediction log, {rows}-row r/s (c16)",
                        on,
                        off,
                        0.10,
                        at_most=True,
                        ratio=cost,
                        profile=spec,
                    )
                )
    swap = r.get("swap")
    if swap:
        steady, during = swap["steady"]["p99_ms"], swap["during"]["p99_ms"]
        out.append(
            _target(
                "swap: failed requests during the swaps",
                swap["failed"],
                None,
                0,
                at_most=True,
                unit="requests",
                ratio=float(swap["failed"]),
            )
        )
        out.append(
            _target(
                "swap: p99 during the swaps vs steady", during, steady, 2, at_most=True, unit="ms"
            )
        )
    fb = r.get("feedback")
    if fb:
        spec = {"kind": "feedback", "model": fb["model"]}
        out.append(
            _target(
                "feedback: labels/s (batches of 500, concurrent clients)",
                fb["labels_per_s"],
                5000,
                1,
                unit="labels/s",
                profile=spec,
            )
        )
        out.append(
            _target(
                "feedback: labelled_rows in the database vs acknowledged",
                fb["stored"],
                fb["acknowledged"],
                1,
                unit="rows",
                ratio=1.0 if fb["stored"] == fb["acknowledged"] else 0.0,
            )
        )
    return out


# --- rendering ---------------------------------------------------------------------------------


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def _ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**PASS**" if ok else "**MISS**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _section(title: str, intro: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A RESULTS.md section: its heading, a paragraph, one table."""
    return [f"## {title}", "", intro, "", *_table(header, rows), ""]


def _targets_section(r: Results) -> list[str]:
    rows = []
    for t in r.get("targets", []):
        unit = t["unit"]
        if "cost of the prediction log" in t["text"]:
            measured = f"{_num(t['measured'])} on / {_num(t['reference'])} off"
            ratio = "n/a" if t["ratio"] is None else f"{100 * t['ratio']:.1f} %"
            goal = "≤ 10 %"
        elif unit == "ms":
            measured = f"{_ms(t['measured'])} ms / {_ms(t['reference'])} ms"
            ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}x"
            goal = t["goal"] + "x"
        elif unit in ("requests", "rows"):
            measured = _num(t["measured"])
            if t["reference"] is not None:
                measured += f" / {_num(t['reference'])}"
            ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:g}"
            goal = "0" if unit == "requests" else "equal"
        else:
            measured = f"{_num(t['measured'])} / {_num(t['reference'])} {unit}"
            ratio = "n/a" if t["ratio"] is None else f"{t['ratio']:.2f}x"
            goal = t["goal"] + "x"
        rows.append([t["text"], measured, ratio, goal, _verdict(t["pass"])])
    missed = sum(1 for t in r.get("targets", []) if t["pass"] is False)
    passed = sum(1 for t in r.get("targets", []) if t["pass"] is True)
    na = sum(1 for t in r.get("targets", []) if t["pass"] is None)
    return _section(
        "Targets",
        f"{passed} PASS, {missed} MISS, {na} n/a. Loopserve figures are with input validation "
        'and the prediction log on (except the log-cost rows). "MLServer best single-process" '
        'is MLServer with parallel_workers 0 at its better concurrency (1 or 16); "MLServer '
        'best" / "lowest p99" take the better of its two configurations. v1 rows compare '
        "loopserve's v1 payload (one object per row) against MLServer's V2 tensor payload and "
        "against the floor serving the same v1 payload.",
        ["target", "measured / reference", "ratio", "goal", "verdict"],
        rows,
    )


def _cell_note(c: Cell) -> str:
    notes = [f"HTTP {k}: {v}" for k, v in c.get("statuses", {}).items()]
    if c.get("note"):
        notes.append(c["note"])
    if c.get("other_cores", 0) > BUSY_CORES:
        notes.append(f"disturbed: other processes used {c['other_cores']:.2f} cores")
    return "; ".join(notes)


def _matrix_section(r: Results) -> list[str]:
    out = [
        "## Throughput and latency",
        "",
        "All servers run throughout; each cell is measured on every server back to back, in "
        "an order that rotates from cell to cell, so the ratios compare measurements taken "
        f"seconds apart. wrk, {r['timing']['duration']:g} s per cell after a "
        f"{r['timing']['warmup']:g} s warm-up, one wrk thread, `--timeout 10s`. r/s counts 2xx "
        "responses only; rows/s = r/s * rows per request. p50/p99 from wrk `--latency`. A "
        "cell during which other processes (not the server, wrk, the harness or PostgreSQL) "
        f"used more than {BUSY_CORES:g} cores on average is measured once more; the note says "
        "when the "
        "second measurement was still disturbed.",
        "",
    ]
    disturbed = [c for c in r.get("cells", []) if c.get("other_cores", 0) > BUSY_CORES]
    if disturbed:
        out += [
            f"**{len(disturbed)} cell(s) were measured while other processes used the CPU** "
            "(see notes): their numbers are low and noisy.",
            "",
        ]
    for model in r.get("models", []):
        for rows in (1, 1000):
            out += [f"### {model}, {rows} row{'s' if rows > 1 else ''} per request", ""]
            table = []
            for c in r.get("cells", []):
                if c["model"] != model or c["rows"] != rows:
                    continue
                if c["status"] != "ok":
                    table.append(
                        [SERVER_LABELS[c["server"]], c["protocol"], str(c["conc"]), "n/a"]
                        + ["n/a"] * 5
                        + [c.get("note", "")[:120].replace("|", "/").replace("\n", " ")]
                    )
                    continue
                table.append(
                    [
                        SERVER_LABELS[c["server"]],
                        c["protocol"],
                        str(c["conc"]),
                        _num(c["rps"]),
                        _num(c["rps"] * rows),
                        _ms(c["p50_ms"]),
                        _ms(c["p99_ms"]),
                        str(c["non_2xx"]),
                        str(c["socket_errors"]),
                        _cell_note(c),
                    ]
                )
            header = ["server", "protocol", "conc", "r/s", "rows/s", "p50 ms", "p99 ms"]
            out += _table([*header, "non-2xx", "socket err", "note"], table)
            out.append("")
    return out


def _logging_section(r: Results) -> list[str]:
    rows = []
    for model in r.get("models", []):
        for proto in ("v1", "v2"):
            for n in (1, 1000):
                for conc in (1, 16):
                    on = cell(r, "loopserve_log_on", proto, model, n, conc)
                    off = cell(r, "loopserve_log_off", proto, model, n, conc)
                    cost = (
                        f"{100 * (1 - on['rps'] / off['rps']):.1f} %"
                        if on and off and off["rps"]
                        else "n/a"
                    )
                    rows.append(
                        [
                            model,
                            proto,
                            str(n),
                            str(conc),
                            _num(_rps(on)),
                            _num(_rps(off)),
                            cost,
                            _ms(_p99(on)),
                            _ms(_p99(off)),
                        ]
                    )
    header = ["model", "protocol", "rows", "conc", "r/s log on", "r/s log off", "cost"]
    return _section(
        "Prediction log on vs off (loopserve)",
        "Between cells with the log on, the harness waits until the log backlog is written, so "
        "one cell's inserts do not land in the next one.",
        [*header, "p99 on", "p99 off"],
        rows,
    )


def _rss_section(r: Results) -> list[str]:
    rows = [
        [SERVER_LABELS[k], _num(v["idle_mib"]), _num(v["after_mib"]), str(v["processes"])]
        for k, v in r.get("rss", {}).items()
    ]
    return _section(
        "Memory",
        "VmRSS from /proc, summed over the server process and its descendants (MLServer's "
        "inference workers), after start and after all its cells.",
        ["server", "RSS idle MiB", "RSS after load MiB", "processes"],
        rows,
    )


def _inprocess_section(r: Results) -> list[str]:
    rows = [
        [
            x["model"],
            x.get("graph", "served"),
            str(x["rows"]),
            _num(x["calls_per_s"]),
            f"{x['us_per_call']:.1f}",
        ]
        for x in r.get("inprocess", [])
    ]
    return _section(
        "In-process floor (no HTTP)",
        "onnxruntime `session.run` in a tight loop, one intra-op thread: on the graph loopserve "
        "and the floor serve (one [N, 1] input per feature, from `tuning.export.to_onnx`), and "
        "for comparison on the same fitted pipeline exported with one [N, 30] input.",
        ["model", "graph", "rows", "calls/s", "µs per call"],
        rows,
    )


STAGES = (
    "parse JSON",
    "validate into columns",
    "ONNX run (with feeds)",
    "prediction ids",
    "encode",
)
LOG_STAGE = "log: serialise (log thread)"


def _stage_cells(r: Results) -> dict[tuple[str, int], dict[tuple[str, str], float]]:
    """{(model, rows): {(protocol, stage): µs}}; v2 shares v1's ONNX run, ids and log."""
    out: dict[tuple[str, int], dict[tuple[str, str], float]] = {}
    for s in r.get("stages", []):
        out.setdefault((s["model"], s["rows"]), {})[s["protocol"], s["stage"]] = s["us"]
    for cells in out.values():
        for shared in ("ONNX run (with feeds)", "prediction ids", LOG_STAGE):
            if ("v1", shared) in cells:
                cells["v2", shared] = cells["v1", shared]
    return out


def _path_us(cells: dict[tuple[str, str], float], protocol: str) -> float:
    """The request path's in-process µs: every stage but the log thread's."""
    return sum(cells.get((protocol, stage), 0.0) for stage in STAGES)


def _stages_section(r: Results) -> list[str]:
    found = _stage_cells(r)
    if not found:
        return []
    lines = [
        "## Where a request's CPU goes (in-process)",
        "",
        "Each stage of loopserve's serving path called in a loop on the bench bodies, with "
        "loopserve's own functions (`python -m bench.stages`; median µs per call), beside the "
        "floor app's whole request on the same body (`bench.floor_app.predict` and `infer`: "
        "parse, shape, run, encode). No "
        "HTTP: this is the Python work one core does per request, before uvicorn and the "
        "middleware. v1's parse is msgspec's decoder typed from the model's features, which "
        "checks every value as it parses. The log thread's serialisation runs off the request "
        "path.",
        "",
    ]
    for (model, rows), cells in found.items():
        table = [
            [stage, f"{cells.get(('v1', stage), 0):,.1f}", f"{cells.get(('v2', stage), 0):,.1f}"]
            for stage in STAGES
        ]
        table.append(
            [
                "**request path**",
                f"**{_path_us(cells, 'v1'):,.1f}**",
                f"**{_path_us(cells, 'v2'):,.1f}**",
            ]
        )
        table.append(
            [
                LOG_STAGE,
                f"{cells.get(('v1', LOG_STAGE), 0):,.1f}",
                f"{cells.get(('v2', LOG_STAGE), 0):,.1f}",
            ]
        )
        floors = [cells.get(("floor", V1_FLOOR)), cells.get(("floor", "whole request"))]
        table.append(
            ["floor app, whole request (same body)", *(f"{f:,.1f}" if f else "—" for f in floors)]
        )
        lines += [
            f"### {model}, {rows} row(s)",
            "",
            *_table(["stage", "v1 µs", "V2 µs"], table),
            "",
        ]
    return lines


def _limits_section(r: Results) -> list[str]:
    """For each missed target, what limits it, from this run's stage timings and log rows."""
    found = _stage_cells(r)
    misses = [t for t in r.get("targets", []) if t["pass"] is False and t.get("profile")]
    if not misses:
        return []
    lines = ["## What limits the missed targets", ""]
    for t in misses:
        spec = t["profile"]
        if spec.get("kind") != "predict":
            lines.append(f"- {t['text']}: see its profile below.")
            continue
        model, proto, rows = spec["model"], spec["protocol"], spec["rows"]
        cells = found.get((model, rows), {})
        path = _path_us(cells, proto)
        floor = cells.get(("floor", V1_FLOOR if proto == "v1" else "whole request"))
        parse = cells.get((proto, "parse JSON"), 0) + cells.get((proto, "validate into columns"), 0)
        on = _rps(cell(r, "loopserve_log_on", proto, model, rows, 16))
        off = _rps(cell(r, "loopserve_log_off", proto, model, rows, 16))
        floor_rps = _rps(cell(r, "floor", proto, model, rows, 16))
        logged = rows * 34 * 4  # bytes: 30 float32 features and 2 probabilities per row
        if "cost of the prediction log" in t["text"]:
            why = (
                f"the log thread serialises a request in {cells.get((proto, LOG_STAGE), 0):,.0f} "
                f"µs and pipes its {logged:,} bytes of float32 to the log's child process, which "
                "COPYs them to PostgreSQL; the child and PostgreSQL storing them (TOAST, WAL) "
                "share the 2 cores with the server and wrk. Back-to-back cells still differ by "
                "tens of percent on this machine: compare the other protocol's row for the same "
                "model and size in the log table, and `bench.logwriter`."
            )
        elif proto == "v1" and rows > 1 and floor:
            why = (
                f"the v1 request path costs {path:,.0f} µs in-process, {parse:,.0f} µs of it "
                f"parsing and checking the rows of `{{feature: value}}`, while the floor's whole "
                f"request on the same body, unchecked, costs {floor:,.0f} µs. Parsing alone "
                f"({cells.get(('v1', 'parse JSON'), 0):,.0f} µs) costs what parsing the same "
                f"numbers as one V2 tensor does ({cells.get(('v2', 'parse JSON'), 0):,.0f} µs): "
                "the decimal numbers are most of it. MLServer gets the V2 tensor body; the "
                "gap is the row objects' form, turned into one float32 matrix in "
                f"{cells.get(('v1', 'validate into columns'), 0):,.0f} µs, and their longer body."
            )
        else:
            gap = [
                f"in-process the {proto.upper()} request path costs {path:,.0f} µs against "
                f"the floor's {floor:,.0f} µs"
                if floor
                else "",
            ]
            if on and off and floor_rps:
                gap.append(
                    f"over HTTP it reaches {on:,.0f} r/s with the log and {off:,.0f} without "
                    f"against the floor's {floor_rps:,.0f}, so the rest is the prediction log "
                    "and the HTTP and middleware layers in front of the fast path (profile)"
                )
            why = "; ".join(g for g in gap if g) + "."
        lines.append(f"- {t['text']}: {why}")
    return [*lines, ""]


def _swap_section(r: Results) -> list[str]:
    s = r.get("swap")
    if not s:
        return ["## Swap under load", "", "not run: " + r.get("swap_error", "?"), ""]
    rows = [
        [
            str(x["to_version"]),
            str(x["promote_status"]),
            f"{x['promote_ms']:.0f}",
            f"{x['served_after_ms']:.0f}",
            str(x["served_version"]),
        ]
        for x in s["swaps"]
    ]
    d, st = s["during"], s["steady"]
    return [
        "## Swap under load",
        "",
        f"{s['model']}, v1 single-row predicts at concurrency 16; {len(s['swaps'])} promotions "
        "through `POST /v1/admin/models/{name}/promote` spread over the run (v2, v1, …, ending "
        "on v1). After each, a side client polls predict until it answers with the new version.",
        "",
        *_table(
            ["phase", "r/s", "p50 ms", "p99 ms", "max ms", "non-2xx", "socket err"],
            [
                [
                    "steady",
                    _num(st["rps"]),
                    _ms(st["p50_ms"]),
                    _ms(st["p99_ms"]),
                    _ms(st["max_ms"]),
                    str(st["non_2xx"]),
                    str(st["socket_errors"]),
                ],
                [
                    "during swaps",
                    _num(d["rps"]),
                    _ms(d["p50_ms"]),
                    _ms(d["p99_ms"]),
                    _ms(d["max_ms"]),
                    str(d["non_2xx"]),
                    str(d["socket_errors"]),
                ],
            ],
        ),
        "",
        f"Failed requests: {s['failed']} (wrk non-2xx + socket errors + "
        f"{s['side_failures']} failed side-client predicts).",
        "",
        *_table(
            ["to version", "promote HTTP", "promote ms", "served after ms", "served version"],
            rows,
        ),
        "",
    ]


def _feedback_section(r: Results) -> list[str]:
    f = r.get("feedback")
    if not f:
        return ["## Feedback ingest", "", "not run: " + r.get("feedback_error", "?"), ""]
    lines = [
        "## Feedback ingest",
        "",
        f"{f['rows']:,} rows predicted through v1 in batches of {r['timing']['feedback_batch']} "
        f"({f['predict_seconds']:.1f} s), the prediction log drained, then their true labels "
        f"posted to `/v1/models/{f['model']}/feedback` in batches of "
        f"{r['timing']['feedback_batch']} from {r['timing']['feedback_clients']} concurrent "
        f"clients; no new batch is sent after {r['timing'].get('feedback_seconds', 0):g} s.",
        "",
        *_table(
            [
                "batches sent",
                "labels sent",
                "acknowledged",
                "failed batches",
                "seconds",
                "labels/s",
                "stored",
            ],
            [
                [
                    f"{f.get('batches_sent', '?')} of {f.get('batches_total', '?')}",
                    _num(f["labels_sent"]),
                    _num(f["acknowledged"]),
                    str(f["failed_batches"]),
                    f"{f['seconds']:.2f}",
                    _num(f["labels_per_s"]),
                    _num(f["stored"]),
                ]
            ],
        ),
        "",
        "`stored` is `SELECT count(*) FROM labelled_rows` for the model (source feedback), read "
        "after the run: it must equal `acknowledged`.",
        "",
    ]
    if f.get("errors"):
        lines += ["Errors: " + "; ".join(f["errors"]), ""]
    return lines


def _profiles_section(r: Results) -> list[str]:
    profiles = r.get("profiles", [])
    out = ["## Profiles of missed targets", ""]
    if not profiles:
        return [*out, "No target missed on loopserve's side: no profile taken.", ""]
    out += [
        "py-spy (`record --rate 100 --format raw --nonblocking`) on the loopserve process while "
        "wrk (c16) or the feedback clients drive the load of the missed target. Own = samples "
        "whose innermost frame is the function; inclusive = samples with the function anywhere "
        "on the stack (thread and event-loop roots left out). Shares are of all samples of busy "
        "threads. Raw collapsed stacks (open in speedscope) are in bench/work/profiles/.",
        "",
    ]
    for p in profiles:
        out += [f"### {p['label']}", ""]
        if p.get("error"):
            out += [f"py-spy failed: `{p['error']}`", ""]
            continue
        out += [
            f"{p['samples']} busy samples ({p.get('waiting', 0)} more of threads parked in "
            "Condition/Event/Queue waits left out); top frames by own time:",
            "",
        ]
        out += _table(["own %", "frame"], [[f"{s:.1f}", f"`{f}`"] for f, s in p["own"]])
        out += ["", "By inclusive time:", ""]
        out += _table(["incl %", "frame"], [[f"{s:.1f}", f"`{f}`"] for f, s in p["inclusive"]])
        out.append("")
    return out


def render(r: Results) -> str:
    env = r["environment"]
    versions = env["versions"]
    lines = [
        "# loopserve benchmark results",
        "",
        f"Run {r['started']} (UTC), {r['elapsed_s'] / 60:.1f} min, with `{r['command']}`.",
        "",
        "## Machine and versions",
        "",
        f"- {env['nproc']} cores ({env['cpu']}), {env['mem_gib']:.0f} GiB, {env['kernel']}; "
        f"Python {env['python']}; {env['wrk']}; PostgreSQL {env['postgres']}.",
        f"- loopserve code measured: commit {r['git']['head']}, the last one to change api/, "
        "registry/, tuning/, worker/, cli/ or pyproject.toml, "
        + (
            f"plus uncommitted changes to {', '.join(r['git']['dirty'])}."
            if r["git"]["dirty"]
            else "with no uncommitted changes."
        ),
        "- loopserve venv: "
        + ", ".join(f"{k} {v}" for k, v in versions["loopserve"].items())
        + ".",
        "- MLServer venv (bench/.venv-mlserver): "
        + ", ".join(f"{k} {v}" for k, v in versions["mlserver"].items())
        + ".",
        "",
        "## Setup",
        "",
        *[f"- `{m}`: {d}." for m, d in r.get("model_descriptions", {}).items()],
        "- Synthetic data from `make_classification` (fixed seed), 5 000 training rows; payload "
        "rows are 2 000 other rows of the same draw, in float32.",
        "- loopserve: `loopserve api --workers 1` on PostgreSQL (`loopserve_bench`, recreated "
        "each run), the pipelines exported with `tuning.export.to_onnx` and registered and "
        'promoted directly in the registry. v1 body `{"instances": [{"f0": …}]}`; V2 body '
        "one FP32 tensor `input` of shape [N, 30].",
        "- MLServer 1.7.1 + mlserver-sklearn: the same pipelines (joblib, fitted on the same "
        "ndarray), `predict_fn: predict_proba` (probabilities returned, as loopserve returns "
        "them), `debug: false` (no access log, as `loopserve api`), everything else default.",
        "- Floor: `bench/floor_app.py`, a raw ASGI callable under uvicorn (httptools, uvloop) "
        "in loopserve's venv, running the same ONNX graph as loopserve in the event loop, on "
        "the same v1 and V2 bodies, with no validation, ids or log.",
        "- All servers are one process tree each on 127.0.0.1, sharing the 2 cores with wrk "
        "(and PostgreSQL, for loopserve).",
        "",
        *_targets_section(r),
        *_limits_section(r),
        *_matrix_section(r),
        *_logging_section(r),
        *_rss_section(r),
        *_inprocess_section(r),
        *_stages_section(r),
        *_swap_section(r),
        *_feedback_section(r),
        *_profiles_section(r),
    ]
    if r.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in r["notes"]], ""]
    return "\n".join(lines)


def main() -> int:
    results = json.loads((WORK / "results.json").read_text())
    RESULTS.write_text(render(results))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
