"""The API's settings never echo a rejected value: it may be a secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.settings import ApiSettings


@pytest.mark.parametrize("token", ["hunter2-short", "Changeme"])
def test_a_rejected_secret_is_not_echoed(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("LOOPSERVE_ADMIN_TOKEN", token)
    with pytest.raises(ValidationError) as caught:
        ApiSettings()
    assert "admin_token" in str(caught.value) and token not in str(caught.value)
