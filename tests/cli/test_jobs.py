"""`loopserve jobs`: the newest retrain jobs of a real server as a table, filtered by model
and status, as many as `--limit` asks for across the API's pages."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cli.main import JOB_STATUSES, main
from registry import catalog
from registry.models import Job, JobStatus, Trigger, utcnow
from tests.api.conftest import ADMIN

TOKEN = ADMIN["Authorization"].split()[1]


def test_the_statuses_are_the_registrys() -> None:
    assert tuple(JobStatus) == JOB_STATUSES


def test_jobs_lists_the_newest_first(live, served, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, db = served
    base = utcnow() - timedelta(minutes=5)
    with db.session() as s:
        model = catalog.get_model(s, "churn")
        result = {"decision": "promoted", "candidate_version": 2, "reason": "better"}
        for i, (status, error) in enumerate(
            [(JobStatus.SUCCEEDED, None), (JobStatus.FAILED, "not enough labelled rows")]
        ):
            s.add(
                Job(
                    model_id=model.id,
                    trigger=Trigger.LABELS,
                    status=status,
                    error=error,
                    result=result if error is None else None,
                    progress=1.0 if error is None else 0.5,
                    created_at=base + timedelta(seconds=i),
                    finished_at=base + timedelta(seconds=i + 1),
                )
            )
    monkeypatch.setattr("cli.main.JOBS_PAGE", 1)  # one job a page: --limit follows the cursor
    common = ["--url", live, "--token", TOKEN]
    assert main(["jobs", *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "job", "model", "status", "trigger", "progress", "created", "finished", "outcome"
    ]  # fmt: skip
    assert [line.split()[1:5] for line in lines[1:]] == [
        ["churn", "failed", "labels", "50%"],
        ["churn", "succeeded", "labels", "100%"],
    ]
    assert lines[1].endswith("not enough labelled rows")
    assert lines[2].endswith("promoted v2")
    assert main(["jobs", "--limit", "1", *common]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["jobs", "--model", "churn", "--status", "succeeded", *common]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]] == ["succeeded"]
    with pytest.raises(SystemExit, match="404 model 'nope' not found"):
        main(["jobs", "--model", "nope", *common])
    for bad in (["--status", "done"], ["--limit", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["jobs", *bad, *common])
        assert exit_.value.code == 2
