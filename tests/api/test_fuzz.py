"""Schemathesis over /openapi.json: every operation the document publishes, called with
generated requests (the documented examples, the coverage phase's boundary and negative
values, then random fuzzing), on a deployment as one is run: a champion served, an admin token
and API keys set, behind a real uvicorn server, on SQLite and on PostgreSQL. Every built-in
check runs on every answer: no 5xx, every status documented, every body, header and content
type as published, invalid input refused, valid input accepted, authentication enforced,
methods not published refused (only `max_response_time`, which needs a limit, is left off:
the request timeout bounds an answer's time instead). Where a check must be told what this
API answers, the configuration below says why. A POST or DELETE refused with a 4xx must
also have stored nothing.

The seed is fixed and the random examples per operation bounded, so a run is repeatable and
takes about a minute per database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from sqlalchemy import func, select

from api.app import create_app
from api.settings import ApiSettings
from registry import catalog
from registry.db import Database
from registry.migrate import upgrade
from registry.models import Event, Job, LabelledRow, Model, ModelVersion
from tests.api.conftest import ADMIN, serve, train_version, with_champion
from tests.conftest import fresh_postgres
from tests.factories import churn_spec

SEED = 20_250_512
# Random examples per operation (the fuzzing phase); the examples and coverage phases add
# theirs, which depend on the schema only.
MAX_EXAMPLES = int(os.environ.get("LOOPSERVE_FUZZ_EXAMPLES", "30"))
API_KEY = "fuzz-client-key-0123456789abcdef"
KEY = {"Authorization": f"Bearer {API_KEY}"}
SETTINGS: dict[str, Any] = {
    "api_keys": API_KEY,
    "champion_poll_seconds": 0.1,
    # The coverage phase sends every operation without a token and with a wrong one, and the
    # checks probe each once more: far past the 20 failures a minute a client address may
    # make by default, after which every request from 127.0.0.1 would answer 429 and nothing
    # past the door would be fuzzed. The throttle itself is tested in test_access.py.
    "auth_failures_per_minute": 1_000_000,
}


def _document() -> dict[str, Any]:
    """The document the app publishes at /openapi.json with these settings (the test
    checks that the served one is the same)."""
    admin_token = ADMIN["Authorization"].split()[1]
    return create_app(ApiSettings(admin_token=admin_token, **SETTINGS)).openapi()


# The document cannot say which rows fit a model: that depends on the model's spec, named by
# the path (its features for predict, feedback and data, its inputs for infer), or on rules
# across a spec's fields (a metric of its task, no feature named as the target). A body that
# fits the schema may still not fit the model, and is refused naming what does not fit: 422
# (400 under the Open Inference Protocol). Those bodies' schema-valid examples are checked for
# that answer alone, here; everything else the check asks is kept.
MODEL_DEPENDENT = [
    ("/v1/models/{name}/predict", "422"),
    ("/v1/models/{name}/feedback", "422"),
    ("/v1/admin/models/{name}/data", "422"),
    ("/v1/admin/models", "422"),
    ("/v1/admin/models/{name}/versions", "422"),  # a file: any bytes fit, few are a model
    ("/v2/models/{name}/infer", "400"),
    ("/v2/models/{name}/versions/{version}/infer", "400"),
]
# The readiness routes answer "not ready" with a 503 by design (a load balancer reads the
# status): /v2/models/{name}/versions/9/ready is such an answer for a version not served.
# A 503 is taken from them when its body is the documented not-ready answer (the schema
# check still runs on it); every other 5xx still fails.
READINESS = [
    "/readyz",
    "/v2/health/ready",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
]
POSITIVE = ["2xx", "401", "403", "404", "409", "429"]  # schemathesis's default, less 3xx and 5xx
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # No example database: a run replays nothing an earlier run stored.
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "request-timeout": 30,
        # Names and versions that exist, drawn half of the time, so that the requests reach
        # past a 404: the served model, its versions, and for DELETE a model made to go.
        "dictionaries": {
            "served": {"values": ["churn"]},
            "doomed": {"values": ["doomed"]},
            "versions": {"values": ["1", "2", "3"]},
            "version_numbers": {"values": [1, 2, 3]},
        },
        "parameters": {
            "path.name": {"dictionary": "served", "probability": 0.5},
            "path.version": {"dictionary": "versions", "probability": 0.5},
            "body.version": {"dictionary": "version_numbers", "probability": 0.5},
        },
        "operations": [
            {
                "include-path": "/v1/admin/models/{name}",
                "include-method": "DELETE",
                "parameters": {"path.name": {"dictionary": "doomed", "probability": 0.5}},
            },
            *(
                {
                    "include-path": path,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*POSITIVE, status]}
                    },
                }
                for path, status in MODEL_DEPENDENT
            ),
            *(
                {
                    "include-path": path,
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}
                    },
                }
                for path in READINESS
            ),
        ],
    }
)
schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@schema.auth(refresh_interval=None)
class Bearer:
    """The admin token for /v1/admin, an API key for every other route, as clients send them."""

    def get(self, case: Case, context: schemathesis.AuthContext) -> str:
        admin = case.operation.path.startswith("/v1/admin")
        return ADMIN["Authorization"] if admin else KEY["Authorization"]

    def set(self, case: Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


@dataclass
class Deployment:
    url: str
    db: Database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """A deployment with the model "churn" and its champion, shared by every operation's
    fuzzing on that database."""
    home = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{home / 'loopserve.db'}", home)
    else:
        with fresh_postgres(request.getfixturevalue("postgres_server")) as url:
            yield from _serve(url, home)


def _serve(database_url: str, home: Path) -> Iterator[Deployment]:
    upgrade(database_url)
    db = Database(database_url)
    try:
        with_champion(db)
        train_version(db, "churn", seed=2)  # a challenger to promote
        with db.session() as s:
            catalog.create_model(s, churn_spec("doomed"), actor="test")
        with serve(database_url, home, **SETTINGS) as url:
            served = httpx.get(f"{url}/openapi.json", headers=KEY).json()
            assert served == schema.raw_schema, "the fuzzed document is not the one served"
            yield Deployment(url, db)
    finally:
        db.dispose()


def _stored(db: Database) -> dict[str, Any]:
    """What a request may store, but for the prediction log, which the replica writes on its
    own time (tests/api/test_bad_inputs.py checks it after each refusal)."""
    with db.session() as s:
        return {
            "models": sorted(s.scalars(select(Model.name))),
            "versions": sorted(
                s.execute(select(ModelVersion.model_id, ModelVersion.version, ModelVersion.stage))
            ),
            "labelled": s.scalar(select(func.count()).select_from(LabelledRow)),
            "jobs": s.scalar(select(func.count()).select_from(Job)),
            "events": s.scalar(select(func.count()).select_from(Event)),
        }


@schema.parametrize()
def test_the_published_api_holds_under_fuzzing(case: Case, deployment: Deployment) -> None:
    writes = case.method.upper() in ("POST", "DELETE")
    before = _stored(deployment.db) if writes else None
    response = case.call_and_validate(base_url=deployment.url)
    if writes and 400 <= response.status_code < 500:
        assert _stored(deployment.db) == before, "a refused request stored something"
