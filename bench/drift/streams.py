"""Seeded synthetic streams with known change points, the workload of the drift benchmark.

Each stream is `initial` labelled rows (the first version trains on them) and `rows` stream
rows, every row a dict of feature values plus the target. The generators are plain numpy so a
seed pins every value on every machine, and the change points are exact rather than whatever a
third-party generator happens to do. Positions scale with the stream's length: at the default
20,000 rows an abrupt change is at row 10,000, the gradual one spans 9,500-10,500 and the
incremental one starts at 5,000; a shorter quick run keeps the same shape.

Numbers are rounded to 4 decimals: the server stores float32 and JSON bodies stay small, and
every learner sees the same rounded values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Row = dict[str, Any]
NOISY = 0.05  # label noise of the classification streams that do not set their own


@dataclass(frozen=True)
class Change:
    """Where the concept changes, in stream rows (0-based, excluding the initial rows)."""

    start: int
    end: int  # == start for an abrupt change
    kind: str  # abrupt | gradual | incremental


@dataclass(frozen=True)
class Stream:
    name: str
    task: str  # classification | regression
    target: str
    features: dict[str, str]  # name -> numeric | categorical, in order
    changes: tuple[Change, ...]
    description: str
    initial: list[Row]
    rows: list[Row]

    @property
    def first_change(self) -> int | None:
        """The first stream row of the first changed concept: metrics split there."""
        return self.changes[0].start if self.changes else None

    @property
    def abrupt(self) -> bool:
        return bool(self.changes) and self.changes[0].kind == "abrupt"

    def spec(self) -> dict[str, Any]:
        """The model spec with defaults only, so the server's own defaults are measured."""
        return {
            "name": self.name,
            "task": self.task,
            "target": self.target,
            "features": [{"name": n, "type": t} for n, t in self.features.items()],
        }

    def x(self, row: Row) -> Row:
        return {n: row[n] for n in self.features}

    def y(self, row: Row) -> Any:
        return row[self.target]


def _flip(rng: np.random.Generator, y: np.ndarray, rate: float) -> np.ndarray:
    """Label noise: a `rate` share of binary labels flipped."""
    return np.where(rng.random(len(y)) < rate, ~y, y)


def _labels(y: np.ndarray, yes: str, no: str) -> list[str]:
    return [yes if v else no for v in y]


def _rows(columns: dict[str, Any], target: str, y: list[Any]) -> list[Row]:
    names = list(columns)
    values = [
        np.round(v, 4).tolist() if v.dtype.kind == "f" else v.tolist() for v in columns.values()
    ]
    return [
        {**dict(zip(names, vals, strict=True)), target: label}
        for vals, label in zip(zip(*values, strict=True), y, strict=True)
    ]


Columns = dict[str, np.ndarray]


def _mixed(rng: np.random.Generator, n: int) -> tuple[Columns, np.ndarray, np.ndarray]:
    """4 numeric (x0..x3 ~ N(0,1)) and 2 categorical (colour: 3 levels, grade: 5), with the
    scores of concept A (x0, x1, colour) and concept B (x2, x3, grade): disjoint features."""
    x = rng.normal(size=(n, 4))
    colour = rng.choice(np.array(["red", "green", "blue"]), size=n)
    grade = rng.choice(np.array(["a", "b", "c", "d", "e"]), size=n)
    colour_effect = np.select([colour == "red", colour == "blue"], [1.0, -1.0], 0.0)
    grade_effect = (np.searchsorted(np.array(["a", "b", "c", "d", "e"]), grade) - 2) * 0.75
    a = x[:, 0] - x[:, 1] + colour_effect
    b = x[:, 2] + x[:, 3] + grade_effect
    cols = {f"x{i}": x[:, i] for i in range(4)} | {"colour": colour, "grade": grade}
    return cols, a, b


MIXED = {**{f"x{i}": "numeric" for i in range(4)}, "colour": "categorical", "grade": "categorical"}


def abrupt_mixed(rng: np.random.Generator, initial: int, rows: int) -> tuple[list[Row], Change]:
    """Concept A until the change, then concept B: a model of A is at chance after it."""
    at = rows // 2
    cols, a, b = _mixed(rng, initial + rows)
    after = np.arange(initial + rows) >= initial + at
    y = _flip(rng, np.where(after, b > 0, a > 0), NOISY)
    return _rows(cols, "outcome", _labels(y, "yes", "no")), Change(at, at, "abrupt")


def stationary(rng: np.random.Generator, initial: int, rows: int) -> tuple[list[Row], None]:
    """Concept A of abrupt_mixed, with its noise, and no change at all."""
    cols, a, _ = _mixed(rng, initial + rows)
    y = _flip(rng, a > 0, NOISY)
    return _rows(cols, "outcome", _labels(y, "yes", "no")), None


def gradual(rng: np.random.Generator, initial: int, rows: int) -> tuple[list[Row], Change]:
    """SEA-like, 3 numeric in [0, 10], 10 % label noise: concept A is x0 + x1 <= 10, concept B
    x1 + x2 >= 10; row i is drawn from B with a sigmoid probability centred on the middle of
    the stream, rising from 0.7 % to 99.3 % over a twentieth of it (1,000 of 20,000 rows)."""
    n, centre, width = initial + rows, rows // 2, max(rows // 20, 10)
    x = rng.uniform(0, 10, size=(n, 3))
    i = np.arange(n) - initial
    p_b = 1 / (1 + np.exp(-(i - centre) * 10 / width))
    from_b = rng.random(n) < p_b
    y = np.where(from_b, x[:, 1] + x[:, 2] >= 10, x[:, 0] + x[:, 1] <= 10)
    y = _flip(rng, y, 0.10)
    cols = {f"x{j}": x[:, j] for j in range(3)}
    change = Change(centre - width // 2, centre + width // 2, "gradual")
    return _rows(cols, "label", _labels(y, "pos", "neg")), change


def incremental(rng: np.random.Generator, initial: int, rows: int) -> tuple[list[Row], Change]:
    """A rotating hyperplane in 10 numeric features in [0, 1], 5 % label noise: the normal
    turns from w0 towards an orthogonal w1 at a constant rate from a quarter of the stream
    (row 5,000 of 20,000) on, a right angle by the last row."""
    n, start = initial + rows, rows // 4
    x = rng.uniform(0, 1, size=(n, 10))
    w0 = rng.normal(size=10)
    w0 /= np.linalg.norm(w0)
    w1 = rng.normal(size=10)
    w1 -= w1 @ w0 * w0
    w1 /= np.linalg.norm(w1)
    i = np.arange(n) - initial
    theta = np.clip((i - start) / max(rows - start, 1), 0, 1) * np.pi / 2
    w = np.cos(theta)[:, None] * w0 + np.sin(theta)[:, None] * w1
    y = _flip(rng, np.einsum("ij,ij->i", x - 0.5, w) > 0, NOISY)
    cols = {f"x{j}": x[:, j] for j in range(10)}
    return _rows(cols, "label", _labels(y, "1", "0")), Change(start, rows, "incremental")


def regression_abrupt(
    rng: np.random.Generator, initial: int, rows: int
) -> tuple[list[Row], Change]:
    """Friedman #1 on 10 numeric features in [0, 1] with N(0, 1) noise; at the change the
    relevant features move from x0..x4 to x5..x9 (river's FriedmanDrift 'gra' swap)."""
    n, at = initial + rows, rows // 2
    x = rng.uniform(0, 1, size=(n, 10))

    def friedman(z: np.ndarray) -> np.ndarray:
        return (
            10 * np.sin(np.pi * z[:, 0] * z[:, 1])
            + 20 * (z[:, 2] - 0.5) ** 2
            + 10 * z[:, 3]
            + 5 * z[:, 4]
        )

    after = np.arange(n) >= initial + at
    y = np.where(after, friedman(x[:, 5:]), friedman(x[:, :5])) + rng.normal(size=n)
    cols = {f"x{j}": x[:, j] for j in range(10)}
    return _rows(cols, "y", np.round(y, 4).tolist()), Change(at, at, "abrupt")


Generator = Callable[[np.random.Generator, int, int], tuple[list[Row], Change | None]]
STREAMS: dict[str, tuple[int, str, dict[str, str], str, Generator]] = {
    # name: (seed offset, task, features, description, generator)
    "abrupt_mixed": (
        1,
        "classification",
        MIXED,
        "abrupt rule change, mixed features",
        abrupt_mixed,
    ),
    "gradual": (
        2,
        "classification",
        {f"x{j}": "numeric" for j in range(3)},
        "gradual SEA-like change, 10 % label noise",
        gradual,
    ),
    "incremental": (
        3,
        "classification",
        {f"x{j}": "numeric" for j in range(10)},
        "rotating hyperplane from a quarter of the stream on",
        incremental,
    ),
    "regression_abrupt": (
        4,
        "regression",
        {f"x{j}": "numeric" for j in range(10)},
        "Friedman #1, relevant features swap",
        regression_abrupt,
    ),
    "stationary": (5, "classification", MIXED, "concept A of abrupt_mixed, no change", stationary),
}
TARGETS = {"abrupt_mixed": "outcome", "stationary": "outcome", "regression_abrupt": "y"}


def make(name: str, *, seed: int = 0, initial: int = 2000, rows: int = 20000) -> Stream:
    """The stream `name`: the same seed, sizes and name give the same rows."""
    offset, task, features, description, generate = STREAMS[name]
    data, change = generate(np.random.default_rng([seed, offset]), initial, rows)
    return Stream(
        name=name,
        task=task,
        target=TARGETS.get(name, "label"),
        features=dict(features),
        changes=(change,) if change is not None else (),
        description=description,
        initial=data[:initial],
        rows=data[initial:],
    )
