"""Champion-change notifications over Redis pub/sub.

Whoever moves a champion pointer publishes after the commit; every API replica listens and
reloads at once. The pointer in the database stays the truth: a lost message only delays a
replica until its next poll (LOOPSERVE_CHAMPION_POLL_SECONDS).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import redis

from registry.settings import is_redis

log = logging.getLogger(__name__)

CHANNEL = "loopserve:champions"


def notify_url(broker_url: str | None, explicit: str | None) -> str | None:
    """The Redis URL to notify on: LOOPSERVE_NOTIFY_URL, else the broker when it is Redis."""
    if explicit:
        return explicit
    if is_redis(broker_url):
        return broker_url
    return None


class ChampionNotifier:
    """Publishes `{"model", "version"}` after a champion changed (`version` null: the model was
    deleted, and no version is to be served); never fails its caller."""

    def __init__(self, url: str | None) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2) if url else None

    def publish(self, model: str, version: int | None) -> None:
        if self._client is None:
            return
        try:
            self._client.publish(CHANNEL, json.dumps({"model": model, "version": version}))
        except redis.RedisError:
            log.warning("could not notify the champion change of %s; replicas will poll", model)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class ChampionListener:
    """Calls `on_change(model)` for every notification; reconnects with a back-off."""

    def __init__(self, url: str, on_change: Callable[[str], None]) -> None:
        self._url, self._on_change = url, on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self._url, socket_timeout=5)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                pubsub.get_message(timeout=1.0)  # the subscription confirmation
                # A change published before the subscription took effect was missed: reload.
                self._on_change("*")
                delay = 0.5
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_change(json.loads(message["data"])["model"])
                pubsub.close()
                client.close()
            except (redis.RedisError, ValueError, KeyError):
                log.warning("champion notifications unavailable; retrying in %.1fs", delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30)
