"""`loopserve up`: api, worker and beat as child processes of one command.

Ctrl-C or SIGTERM stops them all (SIGTERM first, SIGKILL after a grace period); if one child
dies, the others are stopped too, so the platform never half-runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable

from pydantic import ValidationError

from api.settings import ApiSettings
from cli.settings import CliSettings
from registry.migrate import upgrade
from registry.settings import RegistrySettings


def admin_token(settings: CliSettings) -> str:
    """LOOPSERVE_ADMIN_TOKEN, or a token generated once and kept in $LOOPSERVE_HOME."""
    known = settings.token()
    if known:
        return known
    token, path = secrets.token_urlsafe(24), settings.token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def refusal(token: str) -> str | None:
    """Why the API would refuse this admin token (or the other LOOPSERVE_* settings), in
    words that never quote it; None if it takes them. Checked before anything starts, so that
    the token is not printed beside the API's failure."""
    try:
        ApiSettings(admin_token=token)
    except ValidationError as exc:
        reasons = "; ".join(
            f"LOOPSERVE_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        return f"the API would refuse its settings: {reasons}"
    return None


def child_commands(host: str, port: int, concurrency: int) -> dict[str, list[str]]:
    py = sys.executable
    return {
        "api": [py, "-m", "cli.main", "api", "--host", host, "--port", str(port)],
        "worker": [py, "-m", "cli.main", "worker", "--concurrency", str(concurrency)],
        "beat": [py, "-m", "cli.main", "beat"],
    }


def up(host: str, port: int, concurrency: int) -> int:
    settings = CliSettings()
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, LOOPSERVE_HOME=str(home))  # the children's settings read the same
    token = admin_token(settings)
    refused = refusal(token)
    if refused:
        print(f"loopserve up: {refused}", file=sys.stderr, flush=True)
        return 2
    env["LOOPSERVE_ADMIN_TOKEN"] = token
    upgrade(RegistrySettings(home=home).url)

    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, cmd in child_commands(host, port, concurrency).items():
        children[name] = subprocess.Popen(cmd, env=env, start_new_session=True)
    print(f"loopserve is up: http://{host}:{port}  (state in {home})", flush=True)
    print(f"admin token: {token}", flush=True)
    print("Ctrl-C stops api, worker and beat.", flush=True)
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; stopping the rest", flush=True)
                code, stopping = proc.returncode or 1, True
                break
        time.sleep(0.3)
    terminate(children.values())
    return code


def terminate(procs: Iterable[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each child (a Celery worker then finishes its task: warm shutdown), SIGKILL
    whatever is left of its process group after `grace` seconds."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # orphans of the group, if any
