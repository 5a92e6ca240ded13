"""`loopserve delete`: refused without its confirmation flag, and against a real server what
the API deleted is printed."""

from __future__ import annotations

import pytest

from cli.main import main
from tests.api.conftest import ADMIN

TOKEN = ADMIN["Authorization"].split()[1]


def test_delete_needs_its_confirmation(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --yes nothing is sent: the URL below has no server, which a request would hit."""
    assert main(["delete", "churn", "--url", "http://127.0.0.1:9", "--token", TOKEN]) == 2
    assert "--yes" in capsys.readouterr().err


def test_delete_prints_what_went(live: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["delete", "churn", "--yes", "--url", live, "--token", TOKEN]
    assert main(args) == 0
    assert capsys.readouterr().out == (
        "deleted model churn: 1 versions, 100 labelled rows, 0 logged predictions, 0 jobs "
        "(0 cancelled), 2 artifacts (0 shared, kept)\n"
    )
    with pytest.raises(SystemExit, match="404 model 'churn' not found"):
        main(args)
