"""The composition root: build the app from settings; `create_app()` is what uvicorn runs."""

from __future__ import annotations

import functools
import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api import errors
from api.auth import Access
from api.batching import MicroBatcher
from api.champions import ModelCache
from api.dataplane import DataPlane
from api.fastpath import FastPath
from api.guard import Guard
from api.live import Monitor
from api.metrics import Metrics
from api.openapi import complete
from api.platform import Platform
from api.predlog import PredictionLog
from api.requestlog import RequestMiddleware
from api.responses import JSONResponse
from api.routes import admin, docs, health, models, v2
from api.settings import ApiSettings
from registry.db import Database
from registry.notify import ChampionListener, ChampionNotifier, notify_url
from registry.predlog.process import ProcessWriter
from worker.broker import TaskSender

log = logging.getLogger(__name__)


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()  # type: ignore[call-arg]  # admin_token comes from the environment
    metrics = Metrics()
    durable = settings.durable_predictions and settings.prediction_log  # else nothing to commit

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.url)
        cache = ModelCache(
            db, threads=settings.onnx_threads, inline_seconds=settings.inline_onnx_ms / 1000
        )
        metrics.served.source = cache.versions
        on_postgres = db.engine.dialect.name == "postgresql"
        predlog = PredictionLog(
            db,
            flush_seconds=settings.log_flush_seconds,
            batch_size=settings.log_batch_size,
            limit=settings.log_queue_limit,
            writer=ProcessWriter(db.url) if on_postgres and settings.log_writer_process else None,
            durable=durable,
            wait_seconds=settings.durable_wait_seconds,
        )
        predlog.enabled = settings.prediction_log
        metrics.log_backlog.set_function(predlog.pending)
        sender = TaskSender(settings)
        url = notify_url(settings.broker_url, settings.notify_url)
        notifier = ChampionNotifier(url)
        listener = ChampionListener(url, cache.wake) if url else None
        app.state.platform = Platform(
            db,
            cache,
            predlog,
            sender,
            notifier,
            feedback_wait_seconds=max(1.0, 5 * settings.log_flush_seconds),
            max_models=settings.max_models,
        )
        app.state.monitor = Monitor(db)
        metrics.live.source = app.state.monitor.health
        app.state.dataplane = DataPlane(cache, predlog, max_batch_rows=settings.max_batch_rows)
        app.state.batcher = MicroBatcher(app.state.dataplane) if settings.micro_batch else None
        predlog.start()
        try:  # serve the champions from the first request on; readyz reports a failure
            await run_in_threadpool(cache.refresh)
        except Exception:
            log.exception("could not load the champions at start; will keep trying")
        cache.start(settings.champion_poll_seconds)
        if listener:
            listener.start()
        # Latency: the log writer and the poller are Python threads; a short switch interval
        # bounds how long they can hold the GIL while a request waits (5 ms by default), and
        # frozen start-up objects keep full garbage collections short.
        sys.setswitchinterval(settings.gil_switch_seconds)
        gc.freeze()
        try:
            yield
        finally:
            metrics.live.source = metrics.served.source = None
            if listener:
                listener.stop()
            notifier.close()
            cache.stop()
            predlog.close()
            sender.close()
            db.dispose()

    app = LoopserveAPI(
        title="loopserve",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None,  # api.routes.docs serves /docs, with a policy of its own; no /redoc
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    errors.install(app)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(admin.router)
    app.include_router(v2.router)
    app.include_router(docs.router(app.title, app.openapi_url or "/openapi.json"))
    limit, access = settings.max_body_bytes, Access(settings)
    app.state.access = access
    guarded = Guard(functools.partial(FastAPI.__call__, app), access, max_body=limit)
    serving = FastPath(guarded, app.state, access, max_body=limit, durable=durable)
    # Request ids, metrics and the log line of every request, predict's and infer's too.
    app.front = RequestMiddleware(serving, metrics, log_serving=settings.log_serving_requests)
    return app


class LoopserveAPI(FastAPI):
    """FastAPI behind a front door: request ids, metrics and the log (api.requestlog), then the
    serving handlers (api.fastpath) see a request before FastAPI's own middleware stack, whose
    per-request work predict and infer do not need; every other request passes api.guard's
    checks first."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, with predict and infer, which FastAPI never sees, and the bodies
        the routes read themselves (api.openapi.complete, on the document FastAPI keeps,
        whenever it builds one)."""
        document = super().openapi()
        complete(document)
        return document
