"""Prediction ids: a logged batch's id followed by a row's position, so that a replica writes
one row per batch however many predictions it holds, and an id finds its row alone."""

from __future__ import annotations

import os
import re

BATCH_ID_LENGTH = 24  # hex digits: 96 random bits
_WELL_FORMED = re.compile("[0-9a-f]{32}")  # the batch id, then the position in 8 hex digits

# Positions as they appear in ids, formatted once for the sizes logged batches commonly have.
_POSITIONS = tuple(f"{position:08x}" for position in range(20_000))


def new_batch_id() -> str:
    """A random batch id."""
    return os.urandom(BATCH_ID_LENGTH // 2).hex()


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
