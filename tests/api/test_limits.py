"""The request body limit, over real HTTP: every route refuses a body over
LOOPSERVE_MAX_BODY_BYTES with a 413 in its protocol's shape, from the Content-Length before a
byte of the body is sent, and from a chunked body as soon as it passes the limit, without
waiting for its end."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import ADMIN, serve
from tests.factories import churn_rows, features_only

LIMIT = 100_000
CHUNK = 16_384
V1 = {"detail": f"the request body exceeds the limit of {LIMIT} bytes (LOOPSERVE_MAX_BODY_BYTES)"}
V2 = {"error": V1["detail"]}
ROUTES = [  # (path, extra headers, the answer's shape)
    ("/v1/models/churn/predict", {}, V1),
    ("/v2/models/churn/infer", {}, V2),
    ("/v2/models/churn/versions/1/infer", {}, V2),
    ("/v1/models/churn/feedback", {}, V1),
    ("/v1/admin/models/churn/data", ADMIN, V1),
    ("/v1/admin/models/churn/data", {**ADMIN, "Content-Type": "text/csv"}, V1),
    ("/v1/admin/models/churn/promote", ADMIN, V1),
    ("/v1/admin/models", ADMIN, V1),
]


@pytest.fixture
def limited(served, database_url: str, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with serve(database_url, tmp_path, max_body_bytes=LIMIT, champion_poll_seconds=0.1) as url:
        yield url


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}

    def json(self) -> object:
        return json.loads(self.body)


def _exchange(url: str, path: str, headers: dict[str, str], chunks: Iterator[bytes]) -> Answer:
    """POST `chunks` as they come, stopping as soon as an answer arrives; the answer (within
    10 s, or the test fails: a server waiting for the rest of the body never answers)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n")
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered before the body was all sent
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read what it said
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < _length(raw):
            data = sock.recv(65536)
            assert data, f"connection closed after {raw!r}"
            raw += data
    return Answer(raw)


def _length(raw: bytes) -> int:
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    for line in head.split("\r\n"):
        if line.startswith("content-length:"):
            return int(line.split(":")[1])
    return 0


def _chunked(size: int) -> Iterator[bytes]:
    """`size` bytes of a chunked body, never its final chunk: the body has no end."""
    sent = 0
    while sent < size:
        yield f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
        sent += CHUNK


@pytest.mark.parametrize(("path", "headers", "shape"), ROUTES)
def test_a_declared_body_over_the_limit_is_refused_unread(limited, path, headers, shape) -> None:  # type: ignore[no-untyped-def]
    declared = {"Content-Type": "application/json", **headers, "Content-Length": str(LIMIT + 1)}
    answer = _exchange(limited, path, declared, iter(()))  # the body is never sent
    assert answer.status == 413 and answer.json() == shape


@pytest.mark.parametrize(("path", "headers", "shape"), ROUTES)
def test_a_chunked_body_is_refused_once_over_the_limit(limited, path, headers, shape) -> None:  # type: ignore[no-untyped-def]
    chunked = {"Content-Type": "application/json", **headers, "Transfer-Encoding": "chunked"}
    answer = _exchange(limited, path, chunked, _chunked(4 * LIMIT))
    assert answer.status == 413 and answer.json() == shape


def test_a_body_within_the_limit_is_served_chunked_or_not(limited) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"instances": features_only(churn_rows(40, seed=3))}).encode()
    padded = body + b" " * (LIMIT - len(body))  # exactly the limit
    plain = {"Content-Type": "application/json", "Content-Length": str(len(padded))}
    answer = _exchange(limited, "/v1/models/churn/predict", plain, iter([padded]))
    assert answer.status == 200 and len(answer.json()["predictions"]) == 40  # type: ignore[index]
    pieces = [padded[i : i + CHUNK] for i in range(0, len(padded), CHUNK)]
    chunks = [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces] + [b"0\r\n\r\n"]
    chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    answer = _exchange(limited, "/v1/models/churn/predict", chunked, iter(chunks))
    assert answer.status == 200, answer.body
