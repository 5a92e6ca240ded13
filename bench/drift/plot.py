"""One PNG per stream: every learner's 500-row windowed metric against the stream row, with the
change, loopserve's promotions and its detections marked where they happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here
import matplotlib.pyplot as plt

from bench.drift import analysis, metrics

STYLE = {
    "loopserve": {"color": "black", "linewidth": 2.0, "zorder": 5},
    "static": {"color": "tab:gray", "linestyle": ":"},
    "periodic_refit": {"color": "tab:blue", "linestyle": "--"},
    "river_arf": {"color": "tab:green"},
    "river_hat": {"color": "tab:orange"},
}


def plot(raw: dict[str, Any], path: Path) -> None:
    stream, task = raw["stream"], raw["stream"]["task"]
    fig, ax = plt.subplots(figsize=(11, 5))
    for name in raw["learners"]:
        firsts, values = metrics.windows(task, analysis.scores(raw, name))
        if len(values) == 0:
            continue
        shown = values * 100 if task == "classification" else values
        ax.plot(firsts + metrics.WINDOW, shown, label=name, **STYLE.get(name, {}))
    for change in stream["changes"]:
        if change["end"] > change["start"]:
            ax.axvspan(
                change["start"],
                change["end"],
                color="tab:red",
                alpha=0.08,
                label=f"{change['kind']} change",
            )
        ax.axvline(
            change["start"], color="tab:red", linewidth=1.5, label=f"{change['kind']} change starts"
        )
    loop = raw["learners"].get(analysis.LOOP, {})
    for i, p in enumerate(loop.get("promotions", [])):
        row = p.get("first_served_row") if p.get("first_served_row") is not None else p["row"]
        ax.axvline(
            row,
            color="tab:purple",
            linestyle="--",
            linewidth=0.9,
            label="loopserve promotion (first row served)" if i == 0 else None,
        )
    for i, d in enumerate(loop.get("detections", [])):
        ax.axvline(
            d["row"],
            color="tab:brown",
            linestyle="-.",
            linewidth=0.9,
            label="loopserve detected change" if i == 0 else None,
        )
    ax.set_xlabel("stream row (end of the 500-row window)")
    ax.set_ylabel("accuracy (%)" if task == "classification" else "RMSE (target units)")
    ax.set_title(
        f"{stream['name']}: {stream['description']} — test-then-train, "
        f"{metrics.WINDOW}-row windows every {metrics.STEP} rows"
    )
    ax.set_xlim(0, len(raw["truth"]))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
