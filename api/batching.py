"""Concurrent small requests to one model version gathered into one ONNX call.

A request that reaches the ONNX call joins the list of its model version; the first to join
schedules the call for the event loop's next turn, so every request parsed in the same turn
rides along and nobody waits on a timer: alone, a request is served one turn later; under
load, requests batch as they arrive. Only calls small enough to run on the loop come here
(the rest go to the thread pool, see api.fastpath).
"""

from __future__ import annotations

import asyncio

from api.champions import Columns, LoadedModel
from api.dataplane import DataPlane, Served


class MicroBatcher:
    """Owned by the app (app.state); used from the event loop only."""

    def __init__(self, plane: DataPlane) -> None:
        self._plane = plane
        self._waiting: dict[tuple[int, int], list[tuple[Columns, asyncio.Future[Served]]]] = {}

    async def infer(self, model: LoadedModel, columns: Columns) -> Served:
        loop = asyncio.get_running_loop()
        key = (model.model_id, model.version)
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = []
            loop.call_soon(self._run, key, model)
        future: asyncio.Future[Served] = loop.create_future()
        waiting.append((columns, future))
        return await future

    def _run(self, key: tuple[int, int], model: LoadedModel) -> None:
        waiting = self._waiting.pop(key)
        try:
            served = self._plane.infer_many(model, [columns for columns, _ in waiting])
        except Exception as exc:  # every request of the call fails as it would alone
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(waiting, served, strict=True):
            if not future.done():
                future.set_result(result)
