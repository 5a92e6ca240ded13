"""The log's child process answers its parent alone: it listens for one connection, which must
hold the key its parent gave it."""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from registry.predlog import relay
from registry.predlog.record import LOG_COPY


def test_a_connection_without_the_key_is_refused_and_the_relay_ends() -> None:
    env = {
        **os.environ,
        relay.AUTHKEY_VARIABLE: os.urandom(32).hex(),
        relay.CONNINFO_VARIABLE: "host=unused",
        relay.STATEMENT_VARIABLE: LOG_COPY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.predlog.relay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().decode().strip()
    assert Path(address).is_socket()
    with pytest.raises(AuthenticationError):
        Client(address, family="AF_UNIX", authkey=b"a guess")
    _, errors = proc.communicate(timeout=10)
    assert proc.returncode != 0 and b"AuthenticationError" in errors
    assert not Path(address).parent.exists()
