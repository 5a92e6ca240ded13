"""Prediction ids: a logged batch's id followed by a row's position, so that a replica writes
one row per batch however many predictions it holds, and an id finds its row alone.

A batch id starts with the second it was issued, so feedback can tell an id that may still
be in a replica's log buffer (a recent one) from one that is either logged or was never issued.
"""

from __future__ import annotations

import os
import re
import time

BATCH_ID_LENGTH = 24  # hex digits: the issue second (32 bits), then 64 random bits
_WELL_FORMED = re.compile("[0-9a-f]{32}")  # the batch id, then the position in 8 hex digits

# Positions as they appear in ids, formatted once for the sizes logged batches commonly have.
_POSITIONS = tuple(f"{position:08x}" for position in range(20_000))


def new_batch_id() -> str:
    """A batch id issued now: the second (8 hex digits) and 64 random bits."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{os.urandom(8).hex()}"


def issued_at(prediction_id: str) -> int | None:
    """The second (since the epoch, modulo 2^32) a well-formed id says it was issued, else None.

    Ids issued before batch ids carried their second hold random bits there instead.
    """
    if _WELL_FORMED.fullmatch(prediction_id) is None:
        return None
    return int(prediction_id[:8], 16)


def is_recent(prediction_id: str, seconds: float, now: float | None = None) -> bool:
    """Whether the id was issued within the last `seconds` (a minute of clock skew allowed)."""
    issued = issued_at(prediction_id)
    if issued is None:
        return False
    age = (int(time.time() if now is None else now) - issued) & 0xFFFFFFFF
    return age <= seconds or age >= 0x100000000 - 60


def prediction_ids(batch_id: str, rows: int, first: int = 0) -> list[str]:
    """The ids of `rows` rows of a logged batch from position `first`: the batch id and each
    row's position."""
    if first + rows <= len(_POSITIONS):
        return list(map(batch_id.__add__, _POSITIONS[first : first + rows]))
    return [f"{batch_id}{position:08x}" for position in range(first, first + rows)]


def locate(prediction_id: str) -> tuple[str, int] | None:
    """(batch id, position) of a well-formed prediction id, else None."""
    if _WELL_FORMED.fullmatch(prediction_id) is None:
        return None
    return prediction_id[:BATCH_ID_LENGTH], int(prediction_id[BATCH_ID_LENGTH:], 16)
