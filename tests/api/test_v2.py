"""The Open Inference Protocol routes, driven by a real V2 client (tritonclient, binary and
JSON tensors) and by hand-made requests; they share the v1 serving path."""

from __future__ import annotations

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from tests.factories import churn_rows, features_only

NUMERIC = ("x1", "x2", "x3", "x4")


def _inputs(rows: list[dict], *, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in NUMERIC:
        values = np.array([[np.nan if r[name] is None else r[name]] for r in rows], np.float32)
        tensor = triton.InferInput(name, list(values.shape), "FP32")
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    colors = np.array([[r["color"].encode()] for r in rows], dtype=object)
    tensor = triton.InferInput("color", list(colors.shape), "BYTES")
    tensor.set_data_from_numpy(colors, binary_data=binary)
    return [*inputs, tensor]


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infers_like_v1(live, binary: bool) -> None:  # type: ignore[no-untyped-def]
    rows = features_only(churn_rows(7, seed=21))
    client = triton.InferenceServerClient(live.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("churn")
        meta = client.get_model_metadata("churn")
        assert [i["name"] for i in meta["inputs"]] == [*NUMERIC, "color"]
        assert meta["inputs"][4] == {"name": "color", "datatype": "BYTES", "shape": [-1, 1]}
        assert {o["name"] for o in meta["outputs"]} == {"label", "probabilities", "prediction_id"}
        outputs = [
            triton.InferRequestedOutput(n, binary_data=binary)
            for n in ("label", "probabilities", "prediction_id")
        ]
        result = client.infer(
            "churn", _inputs(rows, binary=binary), outputs=outputs, request_id="req-42"
        )
    finally:
        client.close()
    response = result.get_response()
    assert response["id"] == "req-42" and response["model_version"] == "1"
    labels = [_text(x) for x in result.as_numpy("label")]
    proba = result.as_numpy("probabilities")
    ids = [_text(x) for x in result.as_numpy("prediction_id")]
    v1 = httpx.post(f"{live}/v1/models/churn/predict", json={"instances": rows}).json()
    assert labels == [p["label"] for p in v1["predictions"]]
    expected = [[p["probabilities"]["no"], p["probabilities"]["yes"]] for p in v1["predictions"]]
    np.testing.assert_allclose(proba, expected, atol=1e-6)
    assert len(set(ids)) == 7 and all(len(i) == 32 for i in ids)
    feedback = {"labels": [{"prediction_id": i, "label": "yes"} for i in ids]}
    r = httpx.post(f"{live}/v1/models/churn/feedback", json=feedback)
    assert r.status_code == 202 and r.json() == {"accepted": 7}  # V2 predictions are logged


def _text(value: bytes | str) -> str:
    """BYTES come back as bytes from binary tensors, as str from JSON ones."""
    return value.decode() if isinstance(value, bytes) else value


def test_plain_json_flat_and_nested_data(live) -> None:  # type: ignore[no-untyped-def]
    body = {
        "id": "abc",
        "inputs": [
            {"name": "x1", "datatype": "FP64", "shape": [2, 1], "data": [[0.5], [-1.0]]},
            {"name": "x2", "datatype": "INT64", "shape": [2], "data": [1, 2]},
            {"name": "x3", "datatype": "FP32", "shape": [2, 1], "data": [0.1, None]},
            {"name": "x4", "datatype": "FP32", "shape": [2, 1], "data": [0.0, 3.0]},
            {"name": "color", "datatype": "BYTES", "shape": [2, 1], "data": ["red", ""]},
        ],
    }
    r = httpx.post(f"{live}/v2/models/churn/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["id"] == "abc" and out["model_name"] == "churn"
    by_name = {o["name"]: o for o in out["outputs"]}
    assert by_name["probabilities"]["shape"] == [2, 2]
    assert len(by_name["probabilities"]["data"]) == 4
    assert set(by_name["label"]["data"]) <= {"no", "yes"}
    r = httpx.post(f"{live}/v2/models/churn/versions/1/infer", json=body)
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        (lambda b: b["inputs"].pop(), 400, "missing ['color']"),
        (lambda b: b["inputs"][0].update(name="height"), 400, "unknown ['height']"),
        (lambda b: b["inputs"][4].update(datatype="FP32", data=[1.0]), 400, "needs BYTES"),
        (lambda b: b["inputs"][0].update(shape=[2, 1]), 400, "its shape needs 2 values, got 1"),
        (lambda b: b["inputs"][0].update(data=[1e39]), 400, "finite"),
        (lambda b: b.update(inputs="x"), 400, "'inputs' list"),
        (lambda b: b.update(outputs=[{"name": []}]), 400, "outputs[0] must be an object"),
        (lambda b: b.update(outputs={"name": "label"}), 400, "'outputs' must be a list"),
        (lambda b: b.update(outputs=["label"]), 400, "outputs[0] must be an object"),
        (
            lambda b: b.update(outputs=[{"name": "label", "parameters": 1}]),
            400,
            "outputs[0] 'parameters' must be an object",
        ),
        (lambda b: b.update(parameters=[1]), 400, "the request's 'parameters' must be an object"),
        (lambda b: b["inputs"][0].update(parameters="x"), 400, "inputs[0] 'parameters' must be"),
    ],
)
def test_bad_requests_are_v2_errors(live, change, status, words) -> None:  # type: ignore[no-untyped-def]
    body = {
        "inputs": [{"name": n, "datatype": "FP32", "shape": [1, 1], "data": [0.1]} for n in NUMERIC]
        + [{"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": ["red"]}]
    }
    change(body)
    r = httpx.post(f"{live}/v2/models/churn/infer", json=body)
    assert r.status_code == status and words in r.json()["error"], r.text


def test_unknown_model_version_and_limits(live) -> None:  # type: ignore[no-untyped-def]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [0] * 4}]}
    r = httpx.post(f"{live}/v2/models/nope/infer", json=body)
    assert r.status_code == 404 and "not found" in r.json()["error"]
    r = httpx.post(f"{live}/v2/models/churn/versions/9/infer", json=body)
    assert r.status_code == 404 and "serves version 1" in r.json()["error"]
    r = httpx.post(f"{live}/v2/models/churn/infer", json=body)
    assert r.status_code == 400 and "categorical features" in r.json()["error"]
    many = [{"name": n, "datatype": "FP32", "shape": [51, 1], "data": [0.0] * 51} for n in NUMERIC]
    many.append({"name": "color", "datatype": "BYTES", "shape": [51, 1], "data": ["red"] * 51})
    r = httpx.post(f"{live}/v2/models/churn/infer", json={"inputs": many})
    assert r.status_code == 413 and "limit of 50" in r.json()["error"]
    assert httpx.get(f"{live}/v2").json()["extensions"] == ["binary_tensor_data"]
    assert httpx.get(f"{live}/v2/models/nope/ready").status_code == 404


@pytest.mark.parametrize(
    ("depth", "value"), [(1_030, "0.5"), (100_000, "0.5"), (1_000, "NaN"), (200, "NaN")]
)
def test_a_deeply_nested_body_is_a_400_that_says_so(live, depth: int, value: str) -> None:  # type: ignore[no-untyped-def]
    """Past orjson's depth limit, or with a NaN that only the fallback decoder reads, a body
    nested too deeply is refused by name."""
    data = "[" * depth + value + "]" * depth
    tensor = f'{{"name": "x1", "datatype": "FP32", "shape": [1, 1], "data": {data}}}'
    r = httpx.post(f"{live}/v2/models/churn/infer", content=f'{{"inputs": [{tensor}]}}')
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("the inference header is nested too deeply"), r.text


def _one_row(data: list) -> list[dict]:  # type: ignore[type-arg]
    inputs = [{"name": n, "datatype": "FP32", "shape": [1, 1], "data": data} for n in NUMERIC]
    return [*inputs, {"name": "color", "datatype": "BYTES", "shape": [1, 1], "data": ["[[[[]"]}]


def test_an_id_nested_within_orjsons_limit_is_a_400(live) -> None:  # type: ignore[no-untyped-def]
    refused = {"error": "the request's 'id' must be a string or a number"}
    deep = orjson.Fragment(b"[" * 1_000 + b"1" + b"]" * 1_000)
    body = orjson.dumps({"id": deep, "inputs": _one_row([0.1])})
    r = httpx.post(f"{live}/v2/models/churn/infer", content=body)
    assert r.status_code == 400 and r.json() == refused
    r = httpx.post(f"{live}/v2/models/churn/infer", json={"id": 7, "inputs": _one_row([0.1])})
    assert r.status_code == 200 and r.json()["id"] == "7"
    r = httpx.post(f"{live}/v2/models/churn/infer", json={"id": False, "inputs": _one_row([0.1])})
    assert r.status_code == 400 and r.json() == refused


def test_the_fallback_decoder_reads_nan_beside_brackets_in_strings(live) -> None:  # type: ignore[no-untyped-def]
    """Brackets inside strings are no nesting: 70 of them in the id do not refuse a NaN body."""
    body = orjson.dumps({"id": "[" * 70, "inputs": _one_row([[0.1]])}).replace(b"0.1", b"NaN", 1)
    r = httpx.post(f"{live}/v2/models/churn/infer", content=body)
    assert r.status_code == 200 and r.json()["id"] == "[" * 70, r.text
