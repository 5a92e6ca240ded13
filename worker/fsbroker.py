"""The embedded broker: kombu's file-system transport, with whole messages only.

kombu's transport creates a message file in the queue folder and then writes it, while a
consumer moves any file it lists and reads it: a consumer that lists the file between the two
reads an empty payload, and the JSON error it raises stops the Celery worker ("Unrecoverable
error: JSONDecodeError"), and with it `loopserve up`. Beat sending the monitor every second
made that race a matter of minutes. Here a message is written under a name no queue matches
and renamed into place once complete, so a consumer only ever sees whole files (a rename
within one folder is atomic on POSIX).
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's two bases name the parameter differently
        """Put a message on `queue` atomically (the name and order kombu's reader expects)."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
