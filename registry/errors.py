"""Registry errors. Each names what is wrong; the API maps them to HTTP in one place.

RegistryError
├── NotFound          a model, version, job or prediction id does not exist
├── Conflict          the request contradicts current state (duplicate name, no previous champion)
├── CorruptArtifact   stored bytes that no longer hash to their name
└── InvalidData       rows that do not fit the model's spec; `problems` lists row and field
"""

from __future__ import annotations


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
