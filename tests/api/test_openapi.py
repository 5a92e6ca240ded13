"""/openapi.json documents predict, infer and feedback: the examples it shows (what Swagger's
"Try it out" sends) are served, and real answers, successes and failures alike, validate
against the schemas it publishes (JSON Schema 2020-12, as OpenAPI 3.1 has it)."""

from __future__ import annotations

import time
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from api.schemas import EXAMPLE_MODEL
from tests.api.conftest import ADMIN, app_client
from tests.factories import churn_rows, churn_spec, features_only

PREDICT = "/v1/models/{name}/predict"
FEEDBACK = "/v1/models/{name}/feedback"
INFER = "/v2/models/{name}/infer"
INFER_VERSION = "/v2/models/{name}/versions/{version}/infer"
JSON = "application/json"


def _conforms(document: dict[str, Any], path: str, response: httpx.Response) -> None:
    """The response is documented for its status, and its body fits the published schema."""
    answers = document["paths"][path]["post"]["responses"]
    assert str(response.status_code) in answers, f"{path}: {response.status_code} undocumented"
    media = answers[str(response.status_code)]["content"]["application/json"]
    _validate(document, media["schema"], response.json())


def _validate(document: dict[str, Any], schema: dict[str, Any], value: Any) -> None:
    root = {**schema, "components": document["components"]}  # for "#/components/..." refs
    Draft202012Validator(root).validate(value)


def _tensors(rows: list[dict]) -> dict[str, Any]:
    inputs = [
        {"name": k, "datatype": "FP32", "shape": [len(rows), 1], "data": [r[k] for r in rows]}
        for k in ("x1", "x2", "x3", "x4")
    ]
    colors = [r["color"] for r in rows]
    inputs.append({"name": "color", "datatype": "BYTES", "shape": [len(rows), 1], "data": colors})
    return {"id": "r1", "inputs": inputs}


def test_the_documented_examples_are_served(served) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    document = client.get("/openapi.json").json()
    for path in (PREDICT, INFER, INFER_VERSION, FEEDBACK):
        operation = document["paths"][path]["post"]
        url = path.format(name=EXAMPLE_MODEL, version="1")
        media = operation["requestBody"]["content"]["application/json"]
        assert media["examples"], path
        for example in media["examples"].values():
            _validate(document, media["schema"], example["value"])
            r = client.post(url, json=example["value"])
            assert r.status_code in (200, 202), (path, r.text)
            _conforms(document, path, r)
        for status, answer in operation["responses"].items():
            shown = answer["content"]["application/json"]
            if "example" in shown:
                _validate(document, shown["schema"], shown["example"])
            assert shown["schema"] != {"type": "string"}, (path, status)


def test_real_answers_fit_the_published_schemas(served, database_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, _ = served
    document = client.get("/openapi.json").json()
    rows = features_only(churn_rows(3, seed=4))
    r = client.post(
        "/v1/admin/models", json=churn_spec("fresh").model_dump(mode="json"), headers=ADMIN
    )
    assert r.status_code == 201
    deadline = time.monotonic() + 10
    while client.post("/v1/models/fresh/predict", json={"instances": rows}).status_code == 404:
        assert time.monotonic() < deadline, "the new model's name was not learnt"
        time.sleep(0.05)
    served = client.post("/v1/models/churn/predict", json={"instances": rows}).json()
    ids = [p["id"] for p in served["predictions"]]
    many = features_only(churn_rows(51, seed=4))
    expected: dict[str, list[tuple[str, dict[str, Any], int]]] = {
        PREDICT: [
            ("churn", {"instances": rows}, 200),
            ("nope", {"instances": rows}, 404),
            ("churn", {"instances": many}, 413),
            ("churn", {"instances": [{**rows[0], "x1": "tall"}]}, 422),
            ("churn", {"rows": rows}, 422),
            ("fresh", {"instances": rows}, 503),
        ],
        INFER: [
            ("churn", _tensors(rows), 200),
            ("churn", {"inputs": []}, 400),
            ("nope", _tensors(rows), 404),
            ("churn", _tensors(many), 413),
            ("fresh", _tensors(rows), 503),
        ],
        FEEDBACK: [
            ("churn", {"labels": [{"prediction_id": i, "label": "yes"} for i in ids]}, 202),
            ("churn", {"labels": [{"prediction_id": ids[0], "label": "perhaps"}]}, 422),
            ("churn", {"labels": [{"prediction_id": 7, "label": "yes"}]}, 422),
            ("churn", {"labels": []}, 422),
            ("nope", {"labels": [{"features": rows[0], "label": "yes"}]}, 404),
        ],
    }
    for path, cases in expected.items():
        for name, body, status in cases:
            r = client.post(path.format(name=name), json=body)
            assert r.status_code == status, (path, body, r.text)
            _conforms(document, path, r)
    r = client.post(INFER_VERSION.format(name="churn", version="9"), json=_tensors(rows))
    assert r.status_code == 404
    _conforms(document, INFER_VERSION, r)
    for path in (PREDICT, FEEDBACK):  # not JSON, nor even UTF-8
        for bad in (b"{not json", b'{"labels": "\xff\xfe"}'):
            r = client.post(path.format(name="churn"), content=bad, headers={"Content-Type": JSON})
            assert r.status_code == 422, (path, bad, r.text)
            _conforms(document, path, r)
    with app_client(database_url, tmp_path, api_keys="k1") as keyed:
        for path, body in (
            (PREDICT, {"instances": rows}),
            (INFER, _tensors(rows)),
            (FEEDBACK, {"labels": [{"features": rows[0], "label": "yes"}]}),
        ):
            r = keyed.post(path.format(name="churn"), json=body)
            assert r.status_code == 401
            _conforms(document, path, r)


def test_the_documented_v2_types_are_the_codecs() -> None:
    """The request side of infer is documented by hand: it must name what the codec reads
    and writes, no more and no less."""
    from types import SimpleNamespace
    from typing import get_args

    from api import schemas
    from api.oip.decode import NUMERIC_TYPES, outputs_of

    assert set(get_args(schemas.Datatype)) == {*NUMERIC_TYPES, "BYTES"}
    served = set()
    for task in ("classification", "regression"):
        model = SimpleNamespace(spec=SimpleNamespace(task=task), classes=["no", "yes"])
        served |= set(outputs_of(model))  # type: ignore[arg-type]  # the two fields it reads
    assert set(get_args(schemas.RequestOutput.model_fields["name"].annotation)) == served
