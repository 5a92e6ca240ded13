"""`loopserve`: run the platform or one of its roles, and administer it from a shell."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.settings import CliSettings

if TYPE_CHECKING:  # the client is imported only by the commands that use it
    from cli.client import AdminClient


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[str(r.get(c, "") if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def cmd_up(args: argparse.Namespace) -> int:
    from cli.supervisor import up

    return up(args.host, args.port, args.concurrency)


# How `loopserve api` runs uvicorn, whatever starts it (`up`, the image, compose): not uvicorn's
# access log (api.requestlog logs each request, with its id), and no `server: uvicorn` banner.
UVICORN: dict[str, Any] = {"access_log": False, "server_header": False}


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from cli import logs

    env = CliSettings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=logs.config(env.log_format, env.log_level, request_ids=True),
        log_level=env.log_level,
        **UVICORN,
    )
    return 0


def _celery_logs(level: str) -> None:
    """Celery's processes log as ours do (cli.logs): a receiver of its `setup_logging` signal
    replaces its own set-up, in the main process and in each pool process alike."""
    import logging.config

    from celery.signals import setup_logging

    from cli import logs

    log_format = CliSettings().log_format

    def configure(**_: object) -> None:
        logging.config.dictConfig(logs.config(log_format, level))

    setup_logging.connect(configure, weak=False)


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.app import app

    _celery_logs(args.loglevel)
    argv = ["worker", "--loglevel", args.loglevel, "--concurrency", str(args.concurrency)]
    if args.hostname:
        argv += ["--hostname", args.hostname]
    app.worker_main(argv)
    return 0


def cmd_beat(args: argparse.Namespace) -> int:
    from worker.app import app

    _celery_logs(args.loglevel)
    app.start(["beat", "--loglevel", args.loglevel])
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from registry.migrate import upgrade
    from registry.settings import RegistrySettings

    upgrade(RegistrySettings().url)
    print("database is at the latest schema")
    return 0


def _client(args: argparse.Namespace) -> AdminClient:
    from cli.client import AdminClient

    return AdminClient(args.url, args.token)


def cmd_models(args: argparse.Namespace) -> int:
    rows = _client(args).call("GET", "/v1/models")
    print(
        _table(
            [
                {
                    "name": m["name"],
                    "task": m["spec"]["task"],
                    "metric": m["spec"]["metric"],
                    "champion": (m["champion"] or {}).get("version"),
                    "rows": m["labelled_rows"],
                }
                for m in rows
            ],
            ["name", "task", "metric", "champion", "rows"],
        )
    )
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    rows = _client(args).call("GET", f"/v1/models/{args.name}/versions")
    out = []
    for v in rows:
        score = v["metrics"].get("challenger")
        out.append(
            {
                "version": v["version"],
                "stage": v["stage"],
                "kind": v["kind"],
                "family": v["params"].get("family"),
                "parent": v["parent_version"],
                "score": f"{score:.4f}" if isinstance(score, float) else score,
                "reason": (v["reason"] or "")[:80],
            }
        )
    print(_table(out, ["version", "stage", "kind", "family", "parent", "score", "reason"]))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.call("POST", f"/v1/admin/models/{args.name}/retrain")
    print(f"job {job['job_id']} {'joined' if job['joined'] else 'queued'}")
    if args.wait:
        job = client.wait_job(job["job_id"])
        print(json.dumps({k: job[k] for k in ("status", "result", "error")}, indent=2))
        return 0 if job["status"] == "succeeded" else 1
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    body = {"version": args.version, "reason": args.reason or "manual promotion"}
    print(
        json.dumps(_client(args).call("POST", f"/v1/admin/models/{args.name}/promote", json=body))
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    body = {"reason": args.reason or "manual rollback"}
    print(
        json.dumps(_client(args).call("POST", f"/v1/admin/models/{args.name}/rollback", json=body))
    )
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a model; only with --yes, as nothing brings it back."""
    if not args.yes:
        print(
            f"this deletes model {args.name} with its versions, labelled rows, prediction log "
            "and jobs, for good; run again with --yes to do it",
            file=sys.stderr,
        )
        return 2
    gone = _client(args).call("DELETE", f"/v1/admin/models/{args.name}")
    print(
        f"deleted model {gone['model']}: {gone['versions']} versions, "
        f"{gone['labelled_rows']} labelled rows, {gone['predictions']} logged predictions, "
        f"{gone['jobs']} jobs ({len(gone['cancelled_jobs'])} cancelled), "
        f"{gone['artifacts_deleted']} artifacts ({gone['artifacts_kept']} shared, kept)"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a version's ONNX graph to a file (`-` for stdout), once its bytes hash to the
    sha256 the API sends with them."""
    response = _client(args).request("GET", f"/v1/models/{args.name}/versions/{args.version}/onnx")
    data, sent = response.content, response.headers.get("x-content-sha256", "")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sent:
        sys.exit(f"the download's sha256 {digest} is not the one the API sent ({sent or 'none'})")
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    path = Path(args.output or f"{args.name}-v{args.version}.onnx")
    path.write_bytes(data)
    print(f"wrote {path} ({len(data)} bytes, sha256 {digest})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import a version trained elsewhere (ONNX or skops); print what became of it."""
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        sys.exit(f"cannot read {path}: {exc.strerror or exc}")
    params = {"promote": "false"} if args.no_promote else {}
    out = _client(args).call(
        "POST",
        f"/v1/admin/models/{args.name}/versions",
        files={"file": (path.name, data, "application/octet-stream")},
        params=params,
    )
    champion = out["champion_version"]
    served = f"v{champion}" if champion is not None else "none"
    print(f"{out['model']} v{out['version']['version']} {out['decision']}; champion: {served}")
    print(out["reason"])
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    params = {"model": args.model} if args.model else {}
    rows = _client(args).call("GET", "/v1/admin/events", params=params)
    print(_table(rows, ["at", "model", "kind", "actor", "version", "reason"]))
    return 0


# registry.models.JobStatus, spelt out so that `--help` needs no database layer (a test holds
# them equal).
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
JOBS_PAGE = 500  # the most GET /v1/admin/jobs answers at once


def cmd_jobs(args: argparse.Namespace) -> int:
    """The newest `--limit` retrain jobs, a page of the API's at a time."""
    client = _client(args)
    params: dict[str, Any] = {k: v for k in ("model", "status") if (v := getattr(args, k))}
    found: list[dict[str, Any]] = []
    while len(found) < args.limit:
        wanted = min(JOBS_PAGE, args.limit - len(found))
        page = client.call("GET", "/v1/admin/jobs", params={**params, "limit": wanted})
        found += page["jobs"]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    rows = [
        {
            "job": j["job_id"],
            "model": j["model"],
            "status": j["status"],
            "trigger": j["trigger"],
            "progress": f"{j['progress']:.0%}",
            "created": j["created_at"][:19],
            "finished": (j["finished_at"] or "")[:19] or None,
            "outcome": _outcome(j),
        }
        for j in found
    ]
    columns = ["job", "model", "status", "trigger", "progress", "created", "finished", "outcome"]
    print(_table(rows, columns))
    return 0


def _outcome(job: dict[str, Any]) -> str | None:
    """A finished job in a few words: its decision and version, or its error."""
    result = job["result"]
    if result:
        version = result.get("candidate_version")
        return f"{result.get('decision')} v{version}" if version else result.get("decision")
    return (job["error"] or "")[:60] or None


def cmd_demo(args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return run_demo(_client(args), rows=args.rows, seed=args.seed)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loopserve", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="api + worker + beat on this machine (embedded defaults)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--concurrency", type=int, default=2, help="worker processes")
    up.set_defaults(func=cmd_up)

    env = CliSettings()
    api = sub.add_parser("api", help="the HTTP API (uvicorn)")
    api.add_argument("--host", default=env.api_host)
    api.add_argument("--port", type=int, default=env.api_port)
    api.add_argument("--workers", type=int, default=env.api_workers)
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="a Celery worker")
    worker.add_argument("--concurrency", type=int, default=env.worker_concurrency)
    worker.add_argument(
        "--hostname",
        default=env.worker_name,
        help="Celery node name, e.g. w1@%%h (default: celery@host)",
    )
    worker.add_argument("--loglevel", default=env.log_level.upper())
    worker.set_defaults(func=cmd_worker)

    beat = sub.add_parser("beat", help="the Celery beat scheduler (one per deployment)")
    beat.add_argument("--loglevel", default=env.log_level.upper())
    beat.set_defaults(func=cmd_beat)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        func=cmd_migrate
    )

    def admin(
        name: str, help_: str, func: Callable[[argparse.Namespace], int]
    ) -> argparse.ArgumentParser:
        a = sub.add_parser(name, help=help_)
        a.add_argument("--url", default=None, help="default: $LOOPSERVE_URL or :8000")
        a.add_argument("--token", default=None, help="default: $LOOPSERVE_ADMIN_TOKEN")
        a.set_defaults(func=func)
        return a

    admin("models", "list models and their champions", cmd_models)
    admin("versions", "list a model's versions", cmd_versions).add_argument("name")
    r = admin("retrain", "start (or join) a retrain job", cmd_retrain)
    r.add_argument("name")
    r.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    pr = admin("promote", "make a version the champion", cmd_promote)
    pr.add_argument("name")
    pr.add_argument("version", type=int)
    pr.add_argument("--reason")
    rb = admin("rollback", "put the previous champion back", cmd_rollback)
    rb.add_argument("name")
    rb.add_argument("--reason")
    de = admin("delete", "delete a model with its versions, data, log and jobs", cmd_delete)
    de.add_argument("name")
    de.add_argument("--yes", action="store_true", help="confirm: the deletion cannot be undone")
    ex = admin("export", "download a version's ONNX graph", cmd_export)
    ex.add_argument("name")
    ex.add_argument("version", type=int)
    ex.add_argument(
        "-o", "--output", help="file to write, `-` for stdout (default: NAME-vVERSION.onnx)"
    )
    im = admin("import", "import a version trained elsewhere (ONNX or skops)", cmd_import)
    im.add_argument("name")
    im.add_argument("file", help="an ONNX graph, or a scikit-learn Pipeline saved with skops")
    im.add_argument(
        "--no-promote",
        action="store_true",
        help="register it as a challenger only, even if it wins (promote it later)",
    )
    admin("events", "the audit log", cmd_events).add_argument("--model")
    jb = admin("jobs", "retrain jobs, newest first", cmd_jobs)
    jb.add_argument("--model", help="only this model's jobs")
    jb.add_argument("--status", choices=JOB_STATUSES, help="only jobs in this state")
    jb.add_argument("--limit", type=_positive, default=50, help="most jobs shown (default 50)")
    d = admin("demo", "drive a drifting workload against a running server", cmd_demo)
    d.add_argument("--rows", type=int, default=2400)
    d.add_argument("--seed", type=int, default=0)
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
