"""tuning.modelfile: files trained elsewhere checked against a spec. A graph written by another
exporter (no loopserve metadata, inputs in its own order) is put right and predicts as it did;
what breaks the contract is refused by name."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.pipeline import Pipeline

from tests.tuning.tuning_factories import make_data, make_spec
from tuning import modelfile, persist
from tuning.export import OnnxModel, predict_sklearn, to_onnx
from tuning.pipeline import build_pipeline
from tuning.spec import ModelSpec


@pytest.fixture(scope="module")
def fitted() -> tuple[ModelSpec, Pipeline, pd.DataFrame]:
    spec = make_spec("classification")
    X, y = make_data(spec, 300, n_classes=3)
    pipe = build_pipeline(spec, {"family": "logistic"}, random_state=0).fit(X, y)
    return spec, pipe, X


def _foreign(graph: bytes) -> onnx.ModelProto:
    """The graph as another exporter might write it: no metadata, inputs in reverse order."""
    model = onnx.load_from_string(graph)
    del model.metadata_props[:]
    inputs = list(model.graph.input)[::-1]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def test_a_foreign_graph_is_put_right_and_predicts_as_before(fitted) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, X = fitted
    foreign = _foreign(to_onnx(pipe, spec)).SerializeToString()
    probe = modelfile.probe_frame(spec, X)
    read = modelfile.read(foreign, spec, ["0", "1", "2"], probe)
    assert read.format == "onnx" and read.classes == ["0", "1", "2"] and read.parity is None
    assert read.onnx != foreign and "inputs put in the spec's order" in read.checks[-1]
    got, expected = OnnxModel(read.onnx, spec).predict(X), predict_sklearn(pipe, X)
    np.testing.assert_array_equal(got.labels, expected.labels)
    np.testing.assert_allclose(got.proba, expected.proba, atol=1e-4)
    assert len(probe) == len(X) + 2  # and the rows of zeros and missing values


def test_a_graph_as_loopserve_writes_it_is_kept_byte_for_byte(fitted) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, _ = fitted
    graph = to_onnx(pipe, spec)
    assert modelfile.read(graph, spec, None, modelfile.probe_frame(spec, None)).onnx == graph


def test_classes_are_checked(fitted) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, X = fitted
    graph, probe = to_onnx(pipe, spec), modelfile.probe_frame(spec, X)
    with pytest.raises(modelfile.Refused, match=r"classes \['0', '1', '2'\] differ from the mod"):
        modelfile.read(graph, spec, ["0", "1"], probe)
    foreign = _foreign(graph).SerializeToString()
    with pytest.raises(modelfile.Refused, match="has 3 columns for the 2 classes"):
        modelfile.read(foreign, spec, ["0", "1"], probe)
    with pytest.raises(modelfile.Refused, match="the model knows no classes yet"):
        modelfile.read(foreign, spec, None, probe)
    with pytest.raises(modelfile.Refused, match=r"classes \['0', '1', '2'\] differ"):
        modelfile.read(persist.dumps(pipe), spec, ["0", "1", "9"], probe)


def test_probabilities_out_of_class_order_are_refused(fitted) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, X = fitted
    model = _foreign(to_onnx(pipe, spec))
    for node in model.graph.node:
        node.output[:] = ["raw" if o == "probabilities" else o for o in node.output]
    order = numpy_helper.from_array(np.array([2, 0, 1], dtype=np.int64), "order")
    model.graph.initializer.append(order)
    model.graph.node.append(helper.make_node("Gather", ["raw", "order"], ["probabilities"], axis=1))
    with pytest.raises(modelfile.Refused, match="its label is not the class its probabilities"):
        modelfile.read(
            model.SerializeToString(), spec, ["0", "1", "2"], modelfile.probe_frame(spec, X)
        )


def test_tensors_outside_the_file_are_refused(fitted) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, X = fitted
    model = onnx.load_from_string(to_onnx(pipe, spec))
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "4")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    with pytest.raises(modelfile.Refused, match="tensors stored outside the file are refused"):
        modelfile.read(model.SerializeToString(), spec, None, modelfile.probe_frame(spec, X))


def test_a_skops_file_is_exported_and_parity_checked(fitted, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    spec, pipe, X = fitted
    data = persist.dumps(pipe)
    read = modelfile.read(data, spec, ["0", "1", "2"], modelfile.probe_frame(spec, X))
    assert read.format == "skops" and read.onnx == to_onnx(pipe, spec)
    assert read.parity is not None and read.parity.ok and read.parity.rows == len(X) + 2
    assert read.about["family"] == "LogisticRegression"
    monkeypatch.setattr(modelfile, "MAX_UNPACKED_BYTES", 100)
    with pytest.raises(modelfile.Refused, match=r"unpacks to \d+ bytes, over 100 bytes"):
        modelfile.read(data, spec, None, modelfile.probe_frame(spec, X))
    with pytest.raises(modelfile.Refused, match="not a readable zip archive"):
        modelfile.read(modelfile.ZIP_MAGIC + b"garbage", spec, None, X)
    with pytest.raises(modelfile.Refused, match="the file is empty"):
        modelfile.read(b"", spec, None, X)
