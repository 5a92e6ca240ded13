"""The admin commands are tested against a real server: the API tests' app on a real database
with a served champion (`served`) behind uvicorn (`live`)."""

from tests.api.conftest import live, served  # noqa: F401  (fixtures, found by name)
