"""Read docker-compose.yml as Compose would: interpolate `${VAR:-default}` and friends, resolve
merge keys, and map service hostnames onto this machine for running services locally."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${V}, ${V:-d}, ${V-d}, ${V:?err}, ${V?err}, $$."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if op and op.endswith("?"):
            raise KeyError(f"{name}: {arg}")
        return arg if op else ""

    return _VAR.sub(sub, text)


def load(env: dict[str, str]) -> dict[str, Any]:
    """The compose file with variables substituted (YAML merge keys resolved by the loader)."""
    return yaml.safe_load(interpolate(COMPOSE.read_text(), env))


def local_url(url: str, hosts: dict[str, str]) -> str:
    """The same URL with a service hostname replaced by where that service runs here."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host not in hosts:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    where = hosts[host]
    netloc[-1] = where if ":" in where else f"{where}:{parts.port}" if parts.port else where
    return urlunsplit(parts._replace(netloc="@".join(netloc)))
