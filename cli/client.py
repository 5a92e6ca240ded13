"""The admin commands: a thin HTTP client of the admin API."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from cli.settings import CliSettings


class AdminClient:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        settings = CliSettings()
        self.url = (url or settings.url).rstrip("/")
        self.token = token or settings.token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of a request; exits with the API's detail on an error status."""
        return self.request(method, path, **kwargs).json()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer of a request, whatever its body; exits as `call` does on an error."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            sys.exit(
                f"cannot reach loopserve at {self.url}: {exc}. Is `loopserve up` running? "
                "Set LOOPSERVE_URL to point elsewhere."
            )
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            if isinstance(detail, list):  # the problems of an invalid input, one per line
                detail = "\n".join(
                    f"  {p.get('field') or 'body'}: {p.get('msg')}"
                    if isinstance(p, dict)
                    else str(p)
                    for p in detail
                )
                detail = "\n" + detail
            sys.exit(f"{method} {path}: {response.status_code} {detail}")
        return response

    def wait_job(self, job_id: str, timeout: float = 3600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.call("GET", f"/v1/admin/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
                return job
            time.sleep(1)
