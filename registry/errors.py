"""Registry errors. Each names what is wrong; the API maps them to HTTP in one place.

RegistryError
├── NotFound          a model, version, job or prediction id does not exist
├── Conflict          the request contradicts current state (duplicate name, no previous champion)
└── InvalidData       rows that do not fit the model's spec; `problems` lists row and field
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class NotFound(RegistryError):
    pass


class Conflict(RegistryError):
    pass


class InvalidData(RegistryError):
    """Input rows that break the spec; nothing of the batch was stored."""

    def __init__(self, message: str, problems: list[dict]) -> None:
        super().__init__(message)
        self.problems = problems
