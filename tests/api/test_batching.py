"""Micro-batching: the requests of one event-loop turn share one ONNX call and each gets its
own rows, ids and errors back."""

from __future__ import annotations

import asyncio

import numpy as np

from api.codec import decode_rows
from tests.factories import churn_rows, features_only


def _parts(model):  # type: ignore[no-untyped-def]
    return [decode_rows(model, features_only(churn_rows(n, seed=10 + n))) for n in (1, 3, 2)]


def test_requests_of_one_turn_share_one_call_and_get_their_own_rows(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    plane, batcher = client.app.state.dataplane, client.app.state.batcher
    model = plane.model("churn")
    parts = _parts(model)
    calls: list[int] = []
    infer_many = plane.infer_many

    def counted(model, columns):  # type: ignore[no-untyped-def]
        calls.append(len(columns))
        return infer_many(model, columns)

    monkeypatch.setattr(plane, "infer_many", counted)

    async def together():  # type: ignore[no-untyped-def]
        return await asyncio.gather(*(batcher.infer(model, p) for p in parts))

    results = asyncio.run(together())
    assert calls == [3]
    for part, result in zip(parts, results, strict=True):
        alone = plane.infer(model, part)
        assert len(result.ids) == part.n
        assert result.labels.tolist() == alone.labels.tolist()
        np.testing.assert_allclose(result.proba, alone.proba, rtol=1e-6)
    ids = [i for r in results for i in r.ids]
    assert len(set(ids)) == 6


def test_a_failed_call_fails_each_request_of_the_batch(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    plane, batcher = client.app.state.dataplane, client.app.state.batcher
    model = plane.model("churn")

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(plane, "infer", broken)

    async def together():  # type: ignore[no-untyped-def]
        calls = (batcher.infer(model, p) for p in _parts(model))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(together())
    assert [str(r) for r in results] == ["a bug"] * 3
