"""`loopserve demo`: watch the loop recover from a concept drift against a running server.

It creates a classifier from scikit-learn's bundled breast-cancer data set, trains the first
version, then sends traffic whose labels follow a changed concept (the two classes swap, as
when an upstream system renames its codes), posts the true labels as feedback and lets the
label-count trigger retrain. Accuracy per batch shows the drop and the recovery.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer

from cli.client import AdminClient

NAME = "demo-cancer"
BATCH = 100
BARS = "▁▂▃▄▅▆▇█"


def dataset(rows: int, seed: int) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """Rows resampled from the bundled data with a little jitter, so any size can be drawn."""
    raw = load_breast_cancer()
    names = [n.replace(" ", "_") for n in raw.feature_names]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(raw.target), size=rows)
    X = raw.data[pick] + rng.normal(scale=0.03, size=(rows, len(names))) * raw.data.std(axis=0)
    labels = [str(raw.target_names[t]) for t in raw.target[pick]]
    return names, [dict(zip(names, map(float, x), strict=True)) for x in X], labels


def swapped(label: str) -> str:
    return {"malignant": "benign", "benign": "malignant"}[label]


def run_demo(client: AdminClient, *, rows: int, seed: int) -> int:
    names, X, y = dataset(rows, seed)
    first = rows // 4
    taken = {m["name"] for m in client.call("GET", "/v1/models")}
    name = next(n for n in (NAME, *(f"{NAME}-{i}" for i in range(2, 1000))) if n not in taken)
    spec = {
        "name": name,
        "task": "classification",
        "target": "diagnosis",
        "features": [{"name": n, "type": "numeric"} for n in names],
        "retrain": {
            "min_new_labels": 3 * BATCH,
            "max_candidates": 6,
            "max_seconds": 60,
            "windows": [None, 4 * BATCH],
        },
        "promotion": {"min_delta": 0.01, "min_holdout": 50},
    }
    client.call("POST", "/v1/admin/models", json=spec)
    print(f"created model {name}: {len(names)} numeric features")
    training = [{**x, "diagnosis": label} for x, label in zip(X[:first], y[:first], strict=True)]
    client.call("POST", f"/v1/admin/models/{name}/data", json={"rows": training})
    print(f"uploaded {first} labelled rows; training the first version…")
    job = client.wait_job(client.call("POST", f"/v1/admin/models/{name}/retrain")["job_id"])
    print(f"  job {job['status']}: {(job.get('result') or {}).get('reason', job.get('error'))}")
    if job["status"] != "succeeded":
        return 1
    while client.call("GET", f"/v1/models/{name}")["served_version"] is None:
        time.sleep(0.2)  # replicas pick a new champion up within LOOPSERVE_CHAMPION_POLL_SECONDS

    history: list[tuple[int, float, int]] = []
    print(f"\nsending {rows - first} predictions whose true labels follow a changed concept")
    for start in range(first, rows, BATCH):
        batch, truth = X[start : start + BATCH], [swapped(t) for t in y[start : start + BATCH]]
        out = client.call("POST", f"/v1/models/{name}/predict", json={"instances": batch})
        preds = out["predictions"]
        accuracy = float(np.mean([p["label"] == t for p, t in zip(preds, truth, strict=True)]))
        history.append((start // BATCH, accuracy, out["version"]))
        feedback = [
            {"prediction_id": p["id"], "label": t} for p, t in zip(preds, truth, strict=True)
        ]
        client.call("POST", f"/v1/models/{name}/feedback", json={"labels": feedback})
        print(f"  batch {len(history):3d}  served v{out['version']}  accuracy {accuracy:6.1%}")
        time.sleep(0.5)
    _summary(client, name, history)
    return 0


def _summary(client: AdminClient, name: str, history: list[tuple[int, float, int]]) -> None:
    print("\naccuracy per batch (each bar one batch; the digit is the served version)")
    print("  " + "".join(BARS[min(7, int(acc * 8))] for _, acc, _ in history))
    print("  " + "".join(str(v % 10) for _, _, v in history))
    print("\nversion  batches  mean accuracy")
    for version in sorted({v for _, _, v in history}):
        accs = [a for _, a, v in history if v == version]
        print(f"v{version:<7} {len(accs):<8} {np.mean(accs):.1%}")
    print("\nversions of the model:")
    for v in client.call("GET", f"/v1/models/{name}/versions"):
        print(f"  v{v['version']} {v['stage']:<9} {v['kind']:<10} {v['reason'][:90]}")
