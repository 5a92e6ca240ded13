"""The embedded broker delivers whole messages while producers write them."""

from __future__ import annotations

import threading

from kombu import Connection

from worker.broker import broker_conf
from worker.settings import WorkerSettings

MESSAGES = 3000


def _connection(home) -> Connection:  # type: ignore[no-untyped-def]
    conf = broker_conf(WorkerSettings(home=home))
    return Connection(
        conf["broker_url"],
        transport=conf["broker_transport"],
        transport_options={**conf["broker_transport_options"], "polling_interval": 0.001},
    )


def test_a_consumer_never_reads_a_message_being_written(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Producers and a consumer race on one queue folder: every message arrives, whole."""

    def produce(offset: int) -> None:
        with _connection(tmp_path) as conn:
            queue = conn.SimpleQueue("race")
            for i in range(offset, MESSAGES, 2):
                queue.put({"n": i, "pad": "x" * 2000})
            queue.close()

    seen = set()
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("race")  # declared before anyone publishes, as workers do
        producers = [threading.Thread(target=produce, args=(k,)) for k in (0, 1)]
        for p in producers:
            p.start()
        while len(seen) < MESSAGES:
            message = queue.get(timeout=30)
            assert message.payload["pad"] == "x" * 2000
            seen.add(message.payload["n"])
            message.ack()
        queue.close()
    for p in producers:
        p.join()
    assert seen == set(range(MESSAGES))
