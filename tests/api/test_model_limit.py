"""LOOPSERVE_MAX_MODELS bounds the models of a deployment: one more is a 409 naming the limit,
also when many clients create at once, and a deletion makes room again."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
from jsonschema import Draft202012Validator

from tests.api.conftest import ADMIN, app_client, serve
from tests.factories import churn_spec


def _spec(name: str) -> dict:
    return churn_spec(name).model_dump(mode="json")


def test_one_model_too_many_is_a_409_naming_the_limit(db, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with app_client(database_url, tmp_path, max_models=2) as client:
        for name in ("a", "b"):
            r = client.post("/v1/admin/models", json=_spec(name), headers=ADMIN)
            assert r.status_code == 201, r.text
        r = client.post("/v1/admin/models", json=_spec("c"), headers=ADMIN)
        assert r.status_code == 409
        assert r.json() == {
            "detail": "this deployment holds 2 models, its limit (LOOPSERVE_MAX_MODELS=2): "
            "delete a model before creating another"
        }
        document = client.get("/openapi.json").json()
        answer = document["paths"]["/v1/admin/models"]["post"]["responses"]["409"]
        root = {**answer["content"]["application/json"]["schema"], **document}
        Draft202012Validator(root).validate(r.json())
        assert "LOOPSERVE_MAX_MODELS" in answer["description"]
        assert client.delete("/v1/admin/models/a", headers=ADMIN).status_code == 200
        r = client.post("/v1/admin/models", json=_spec("c"), headers=ADMIN)
        assert r.status_code == 201, r.text
        assert [m["name"] for m in client.get("/v1/models").json()] == ["b", "c"]


def test_concurrent_creates_never_pass_the_limit(db, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sixteen clients create a model each at the same moment; three fit."""
    clients = 16
    with serve(database_url, tmp_path, max_models=3) as url:
        start = threading.Barrier(clients)
        statuses: list[int] = []

        def create(i: int) -> None:
            with httpx.Client(base_url=url, headers=ADMIN, timeout=60) as http:
                start.wait()
                statuses.append(http.post("/v1/admin/models", json=_spec(f"m{i}")).status_code)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert Counter(statuses) == {201: 3, 409: clients - 3}
        assert len(httpx.get(f"{url}/v1/models").json()) == 3
