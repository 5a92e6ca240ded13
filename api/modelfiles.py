"""Model files in and out, without HTTP: a version's ONNX graph as the registry stores it, and
a version trained elsewhere imported.

An import is checked against the model's spec (tuning.modelfile: an ONNX graph against the
ONNX contract, a skops pipeline loaded with the allow-list, exported and parity-checked), then
judged as a retrain's challenger is: through its ONNX graph, on the model's newest hold-out,
against the champion (or the baseline), by the promotion rules (worker.training.read_bench,
tuning.challenge.judge). It is registered with its lineage and an audit entry, and promoted
in the same transaction only if it won, the request allows it and the champion it was judged
against is still the champion.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from api.records import ImportDecision
from registry import catalog, events
from registry.catalog import NewVersion
from registry.db import Database
from registry.errors import InvalidData, NotFound, excerpt
from registry.models import ModelVersion, Stage, utcnow

if TYPE_CHECKING:  # the search, skops and the checks are imported by an import only
    from tuning.challenge import Split
    from tuning.policy import Decision

MAX_FILENAME = 255


@dataclass(frozen=True)
class OnnxFile:
    """A version's graph, its name as a download and its sha256 (checked)."""

    filename: str
    data: bytes
    sha256: str

    def headers(self) -> dict[str, str]:
        digest = base64.b64encode(bytes.fromhex(self.sha256)).decode()
        return {
            "content-disposition": f'attachment; filename="{self.filename}"',
            "x-content-sha256": self.sha256,
            "repr-digest": f"sha-256=:{digest}:",
        }


def onnx_file(db: Database, name: str, version: str) -> OnnxFile:
    """The version's ONNX graph; NotFound for no such model or version, CorruptArtifact (named)
    when its bytes no longer match the sha256 the registry stores."""
    with db.session() as s:
        model = catalog.get_model(s, name)
        if not version.isdecimal() or len(version) > 10:
            raise NotFound(f"model {name!r} has no version {excerpt(version)}")
        row = catalog.get_version(s, model, int(version))
        data = catalog.version_onnx(s, model, row)
        return OnnxFile(f"{model.name}-v{row.version}.onnx", data, row.onnx_sha256)


@dataclass(frozen=True)
class Imported:
    """What an import registered (the version detached from its session)."""

    version: ModelVersion
    decision: ImportDecision
    reason: str
    champion_version: int | None
    lineage: dict[str, Any]


def import_version(
    db: Database,
    name: str,
    data: bytes,
    *,
    filename: str | None,
    actor: str,
    promote: bool,
) -> Imported:
    """Check, judge and register a file as the model's next version (see the module's doc);
    InvalidData naming every problem when the file is not a version of this model, and then
    nothing is stored."""
    from tuning import modelfile, persist
    from tuning.challenge import NotEnoughData, judge
    from tuning.data import frame
    from worker.training import read_bench

    with db.session() as s:
        model = catalog.get_model(s, name)
        spec = catalog.spec_of(model)
        known = list(model.classes) if model.classes else None
        bench = read_bench(s, model, spec)
        current = catalog.champion(s, model.id)
        judged_against = current.version if current is not None else None
    rows = bench.rows[-modelfile.PROBE_ROWS :]
    probe = modelfile.probe_frame(spec, frame(spec, rows) if rows else None)
    try:
        checked = modelfile.read(data, spec, known, probe)
    except modelfile.Refused as exc:
        raise InvalidData(
            f"the file is not a version of model {name!r}: {exc}",
            [{"row": None, "field": "file", "message": p} for p in exc.problems],
        ) from exc
    split: Split | None = None
    unjudged = ""
    try:
        split = bench.split(spec)
    except NotEnoughData as exc:
        unjudged = f"not judged: {exc}"
    verdict = judge(spec, split, checked.onnx, bench.champion) if split is not None else None
    lineage: dict[str, Any] = {
        "format": checked.format,
        "filename": filename,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "actor": actor,
        "imported_at": utcnow().isoformat(),
        "checks": checked.checks,
        "parity": vars(checked.parity) if checked.parity is not None else None,
        "about": checked.about,
        "promote_requested": promote,
    }
    with db.session() as s:
        model = catalog.get_model(s, name, lock=True)
        current = catalog.champion(s, model.id)
        now_champion = current.version if current is not None else None
        decision, why = _decision(verdict, unjudged, promote, judged_against, now_champion)
        source = f"imported {checked.format} file" + (f" {filename!r}" if filename else "")
        reason = f"{source}; {why}"
        if bench.champion_problem and verdict is not None:
            reason = f"{reason}; {bench.champion_problem}"
        lineage |= {"decision": decision, "reason": reason}
        new = NewVersion(
            kind="imported",
            onnx=checked.onnx,
            pipeline=persist.dumps(checked.pipeline) if checked.pipeline else None,
            params={"imported": lineage, **_family(checked.about)},
            metrics=verdict.metrics if verdict is not None else {},
            data_window=_window(bench.ids, split),
            classes=checked.classes,
            parent_version=None,
            reason=reason,
            job_id=None,
        )
        version = catalog.register_version(s, model, new, stage=Stage.CHALLENGER)
        events.record(
            s,
            model.id,
            "version_imported",
            actor=actor,
            version=version.version,
            reason=reason,
            detail={**lineage, "metrics": verdict.metrics if verdict is not None else None},
        )
        if decision == "promoted":
            catalog.promote(s, model, version, actor=actor, reason=reason)
        elif decision == "rejected":
            version.stage = Stage.REJECTED
        s.flush()
        champion = catalog.champion(s, model.id)
        return Imported(version, decision, reason, champion.version if champion else None, lineage)


def _decision(
    verdict: Decision | None,
    unjudged: str,
    promote: bool,
    judged_against: int | None,
    now_champion: int | None,
) -> tuple[ImportDecision, str]:
    """What becomes of a file that passed its checks, and why: promoted only when it won,
    the request allows it and the champion it was judged against still is the champion."""
    if verdict is None:
        return "registered", f"{unjudged}; promote it explicitly to serve it"
    if not promote:
        return "registered", (
            f"registered without promotion (promote=false); the rules said: {verdict.reason}"
        )
    if now_champion != judged_against:
        return "registered", (
            f"not promoted: the champion changed from {_v(judged_against)} to "
            f"{_v(now_champion)} while it was judged; the rules said: {verdict.reason}"
        )
    return ("promoted" if verdict.promote else "rejected"), verdict.reason


def _v(version: int | None) -> str:
    return f"v{version}" if version is not None else "none"


def _family(about: dict[str, Any]) -> dict[str, Any]:
    return {"family": about["family"]} if "family" in about else {}


def _window(ids: list[int], split: Split | None) -> dict[str, Any]:
    """An imported version's rows. Which it trained on the platform cannot know: it takes it
    to have seen the rows before the hold-out it was judged on, as a retrain's challenger has
    (so a later challenger is judged on that hold-out and the rows after it), and every row
    when it could not be judged."""
    holdout, seen = None, ids[-1] if ids else None
    if split is not None:
        start, end = split.holdout
        holdout = {"first_row_id": ids[start], "last_row_id": ids[end - 1], "rows": end - start}
        seen = ids[start - 1]
    return {
        "first_row_id": None,
        "last_row_id": seen,
        "rows": None,
        "trained_elsewhere": True,
        "holdout": holdout,
    }


def clean_filename(name: str | None) -> str | None:
    """A file name as the lineage keeps it: its last path part, at most MAX_FILENAME
    characters; None when nothing is left."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:MAX_FILENAME] or None
