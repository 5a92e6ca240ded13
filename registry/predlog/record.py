"""The prediction log's record: one row of `prediction_batches` per logged batch, and its
binary COPY form for PostgreSQL."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class LoggedBatch:
    """One logged batch of predictions, serialised by the caller off the request path.

    `numeric` is the float32 matrix [rows, numeric features] as little-endian bytes, given as
    pieces in order (one per request: SessionWriter's COPY streams them as they are; the
    relay's ProcessWriter joins them into its one message; SQLite stores them joined),
    `probabilities` likewise [rows, classes] (None for a regressor); `categorical`
    ({feature: [value or None per row]}, None without categorical features) and `labels` come
    as UTF-8 JSON, which PostgreSQL's binary COPY takes as it is.
    """

    id: str  # registry.predlog.ids.BATCH_ID_LENGTH hex digits
    model_id: int
    version: int
    created_at: datetime
    rows: int
    numeric: Sequence[bytes | memoryview]
    categorical: bytes | None
    labels: bytes
    probabilities: Sequence[bytes | memoryview] | None


# The columns a writer fills; `first_position` keeps its default, 0.
COLUMNS = "id, model_id, version, rows, numeric, categorical, labels, probabilities, created_at"
LOG_COPY = f"COPY prediction_batches ({COLUMNS}) FROM STDIN (FORMAT BINARY)"

# PostgreSQL's binary COPY format: a signature, flags and header-extension length, then per row
# the field count and each field as its byte length (-1 for NULL) and its bytes, then -1.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)
_NULL = struct.pack("!i", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz counts microseconds from here


def copy_stream(batches: Sequence[LoggedBatch]) -> list[bytes | memoryview]:
    """The binary COPY data of LOG_COPY for these batches, as pieces to send in order.

    The float matrices and the JSON (whose binary form is its text) go in as they are: no
    escaping, no parsing, and no copy of the large pieces here (a caller may still join them).
    """
    pieces: list[bytes | memoryview] = [_SIGNATURE]
    for b in batches:
        ident = b.id.encode()
        at = b.created_at - _PG_EPOCH
        micros = (at.days * 86_400 + at.seconds) * 1_000_000 + at.microseconds
        head = struct.pack("!hi", 9, len(ident)) + ident
        head += struct.pack("!iqiiii", 8, b.model_id, 4, b.version, 4, b.rows)
        pieces.append(head)
        for value in (b.numeric, _one(b.categorical), _one(b.labels), b.probabilities):
            if value is None:
                pieces.append(_NULL)
            else:
                size = sum(memoryview(piece).nbytes for piece in value)
                pieces += (struct.pack("!i", size), *value)
        pieces.append(struct.pack("!iq", 8, micros))
    pieces.append(_TRAILER)
    return pieces


def _one(value: bytes | None) -> list[bytes] | None:
    return None if value is None else [value]
