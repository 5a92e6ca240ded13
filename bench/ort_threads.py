"""onnxruntime intra-op threads, 1 vs 2, on the bench models: what LOOPSERVE_ONNX_THREADS
defaults to and why. Run: .venv/bin/python -m bench.ort_threads"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from bench.inprocess import _rate
from bench.models import build_models


def main() -> None:
    print("| model | threads | rows | µs per call |\n|---|---|---|---|")
    for model in build_models(log=lambda _: None):
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(model.onnx, options, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            for rows in (1, 1000):
                X = np.ascontiguousarray(model.X[:rows], dtype=np.float32)
                feeds = {n: np.ascontiguousarray(X[:, i : i + 1]) for i, n in enumerate(names)}
                _, us = _rate(session, feeds, 1.5)
                print(f"| {model.name} | {threads} | {rows} | {us:,.1f} |")


if __name__ == "__main__":
    main()
