"""Prediction ids: a batch id and a position, and nothing else is taken for one."""

from __future__ import annotations

import pytest

from registry.predlog.ids import locate, new_batch_id, prediction_ids


def test_ids_are_the_batch_id_and_each_position() -> None:
    batch = new_batch_id()
    assert len(batch) == 24 and batch != new_batch_id()
    assert prediction_ids(batch, 2, 3) == [batch + "00000003", batch + "00000004"]
    beyond = prediction_ids(batch, 2, 19_999)  # past the positions formatted in advance
    assert beyond == [batch + "00004e1f", batch + "00004e20"]
    assert [locate(i) for i in beyond] == [(batch, 19_999), (batch, 20_000)]


@pytest.mark.parametrize(
    "malformed",
    [
        "a" * 24 + "0000001",  # too short
        "a" * 24 + "000000001",  # too long
        "a" * 24 + "-0000001",  # int() would take a sign,
        "a" * 24 + "0000_001",  # an underscore,
        "a" * 24 + "0x000001",  # or a prefix
        "A" * 24 + "00000001",  # issued ids are lower case
    ],
)
def test_nothing_else_is_taken_for_an_id(malformed: str) -> None:
    assert locate(malformed) is None
