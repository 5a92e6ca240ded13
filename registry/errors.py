"""Registry errors. Each names what is wrong; the API maps them to HTTP in one place.

RegistryError
├── NotFound          a model, version, job or prediction id does not exist
├── Conflict          the request contradicts current state (duplicate name, no previous champion)
├── CorruptArtifact   stored bytes that no longer hash to their name
└── InvalidData       rows that do not fit the model's spec; `problems` lists row and field

A message quotes an offending input value through `excerpt` (or `clip`): at most a short
prefix of it.
"""

from __future__ import annotations

import reprlib


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class NotFound(RegistryError):
    pass


class Conflict(RegistryError):
    pass


class CorruptArtifact(RegistryError):
    """An artifact's bytes no longer match their sha256: whatever reads them must not use
    them (a state of the stored data, not a conflict with the request or an attempt)."""


class InvalidData(RegistryError):
    """Input rows that break the spec; nothing of the batch was stored."""

    def __init__(self, message: str, problems: list[dict]) -> None:
        super().__init__(message)
        self.problems = problems


# How much of an offending input value an error message quotes: a request may carry a value of
# megabytes (a prediction id, a feature name), and an error must never send it back whole.
ECHO_CHARS = 64
_ELLIPSIS = "…"


def excerpt(value: object) -> str:
    """`repr(value)`, cut to its first ECHO_CHARS characters and an ellipsis when longer; a
    long string is cut before it is quoted, and a container is never rendered whole."""
    if isinstance(value, str):
        if len(value) <= ECHO_CHARS:
            return repr(value)
        return repr(value[:ECHO_CHARS]) + _ELLIPSIS
    return clip(_REPR.repr(value))


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """`text` itself when at most `limit` characters, else its first `limit` and an ellipsis."""
    return text if len(text) <= limit else text[:limit] + _ELLIPSIS


def _bounded_repr() -> reprlib.Repr:
    """A repr that renders a few items of a container and a short prefix of a string, so that
    quoting a huge list costs no more than quoting a short one."""
    bounded = reprlib.Repr()
    bounded.maxstring = bounded.maxother = ECHO_CHARS
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 8
    return bounded


_REPR = _bounded_repr()
