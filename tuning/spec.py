"""The model spec: what a user declares about a model, and nothing about how it is stored.

Every other package reads these types; they are plain pydantic models so that the API can
validate them from JSON and the registry can store them as JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from tuning.labels import class_name

Task = Literal["classification", "regression"]
FeatureType = Literal["numeric", "categorical"]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")

CLASSIFICATION_FAMILIES = ("logistic", "sgd", "mlp", "random_forest", "gradient_boosting")
REGRESSION_FAMILIES = ("ridge", "sgd", "mlp", "random_forest", "gradient_boosting")
# Families that can continue training on new rows without a refit (partial_fit).
WARM_START_FAMILIES = ("sgd", "mlp")

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


DAY = 86_400
MAX_ROWS = 100_000_000  # bounds every row count a spec names
MAX_FEATURES = 2_000
MAX_NAME_LENGTH = 200  # a target or class name
MAX_WORD_LENGTH = 64  # a metric, family or parameter name: what an error may quote whole
SEED_MAX = 2**32 - 1  # what numpy and scikit-learn accept as a seed
PARAM_INT_MAX = 2**53  # fixed_params integers stay exact in every JSON reader


class _Strict(BaseModel):
    """Unknown fields are errors, and no number is infinite or NaN: every bound below is an
    explicit upper bound too, so a spec cannot carry a value the loop cannot compute with."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class FeatureSpec(_Strict):
    """One raw input column; categoricals arrive as strings, numerics as numbers or null."""

    name: str = Field(pattern=NAME_PATTERN)
    type: FeatureType


class RetrainSettings(_Strict):
    """When to retrain and how much search a retrain may spend."""

    schedule_seconds: float | None = Field(
        default=None,
        gt=0,
        le=366 * DAY,
        description="Retrain on this period (beat); null turns it off.",
    )
    min_new_labels: int | None = Field(
        default=200,
        ge=1,
        le=MAX_ROWS,
        description="Retrain once this many labels arrived since the last job.",
    )
    max_candidates: int = Field(default=12, ge=1, le=500, description="Refit configurations tried.")
    max_seconds: float = Field(
        default=120.0, gt=0, le=DAY, description="Wall-clock budget of the search."
    )
    families: list[Annotated[str, Field(max_length=MAX_WORD_LENGTH)]] | None = Field(
        default=None,
        max_length=10,
        description="Estimator families the search may use; null means all.",
    )
    fixed_params: dict[Annotated[str, Field(max_length=MAX_WORD_LENGTH)], Any] = Field(
        default_factory=dict,
        description="Parameters pinned for every candidate, e.g. {'scaler': 'standard', 'C': 1.0}.",
    )
    windows: list[int | None] = Field(
        default_factory=lambda: [None, 4000, 1500, 500],
        max_length=10,
        description="Training windows searched: null is all rows, N the most recent N rows. "
        "After a detected change every window starts at the change at the earliest.",
    )
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=0.9,
        description="Share of the rows new to the champion (after a detected change: of the "
        "rows since it) held out, newest first, to judge champion and challenger on.",
    )
    warm_start: bool = Field(default=True, description="Also continue the champion on new rows.")
    fusion: bool = Field(
        default=True,
        description="Also try a soft-voting fusion of the search's best runs (one ONNX graph).",
    )
    refit_holdout: bool = Field(
        default=True,
        description="A challenger that won is trained again with its hold-out rows before it "
        "is registered: judged on rows it had not seen, served having learned from them.",
    )
    seed: int = Field(default=0, ge=0, le=SEED_MAX, description="Seed of the search.")
    on_drift: bool = Field(
        default=True, description="A detected change (concept or data) triggers a retrain."
    )
    drift_cooldown_seconds: float = Field(
        default=30.0,
        ge=0,
        le=30 * DAY,
        description="Least time between two retrains triggered by changes.",
    )
    reaction_rows: int = Field(
        default=150,
        ge=20,
        le=1_000_000,
        description="Labelled rows after a detected concept change before the fast reaction "
        "retrain runs on them.",
    )
    reaction_candidates: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Refit configurations of the fast reaction retrain (5: one per family).",
    )
    reaction_seconds: float = Field(
        default=8.0,
        gt=0,
        le=3600,
        description="Wall-clock budget of the fast reaction retrain's search.",
    )
    reaction_holdout_fraction: float = Field(
        default=0.5,
        gt=0,
        lt=0.9,
        description="holdout_fraction of the reaction retrains: a champion trained on a few rows "
        "of a new concept is replaced only on enough fresh rows to tell a real gain from luck.",
    )

    @field_validator("windows")
    @classmethod
    def _windows_positive(cls, v: list[int | None]) -> list[int | None]:
        if not v:
            raise ValueError("at least one window")
        if any(w is not None and not 10 <= w <= MAX_ROWS for w in v):
            raise ValueError(f"a window has at least 10 and at most {MAX_ROWS} rows")
        return v

    @field_validator("fixed_params")
    @classmethod
    def _params_are_plain(cls, v: dict[str, Any]) -> dict[str, Any]:
        if len(v) > 50:
            raise ValueError("at most 50 fixed parameters")
        for key, value in v.items():
            _check_param(key, value)
        return v


class PromotionSettings(_Strict):
    """What a challenger must show before it replaces the champion."""

    min_delta: float = Field(
        default=0.0, ge=0, le=1e6, description="Metric gain required, in its units."
    )
    significance: float = Field(
        default=0.05, gt=0, lt=1, description="Level of the paired test (one-sided)."
    )
    test: Literal["auto", "bootstrap", "mcnemar"] = Field(
        default="auto", description="auto: McNemar for accuracy, paired bootstrap otherwise."
    )
    min_holdout: int = Field(
        default=50, ge=1, le=MAX_ROWS, description="Fewest hold-out rows to decide on."
    )
    bootstrap_samples: int = Field(default=2000, ge=100, le=100_000)


class DriftSettings(_Strict):
    """How changes are detected on the live traffic of the champion."""

    delta: float = Field(
        default=0.002,
        gt=0,
        lt=1,
        description="ADWIN's confidence on the champion's error stream: smaller is slower and "
        "raises fewer false alarms.",
    )
    min_rows: int = Field(
        default=100,
        ge=10,
        le=1_000_000,
        description="Labelled rows of a champion before its errors are tested.",
    )
    psi_threshold: float = Field(
        default=0.25,
        gt=0,
        le=100,
        description="Population stability index above which a feature counts as drifted.",
    )
    data_window: int = Field(
        default=2000,
        ge=100,
        le=1_000_000,
        description="Newest logged predictions compared per feature.",
    )


class ModelSpec(_Strict):
    """A model as its user declares it."""

    name: str = Field(pattern=NAME_PATTERN)
    task: Task
    target: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    features: list[FeatureSpec] = Field(min_length=1, max_length=MAX_FEATURES)
    classes: list[str] | None = Field(
        default=None,
        max_length=10_000,
        description="Known classes of a classifier; default: the labels of its uploaded data.",
    )
    metric: str | None = Field(
        default=None,
        max_length=MAX_WORD_LENGTH,
        description="Default: accuracy for classification, rmse for regression.",
    )
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        """The rules across fields, each problem at the field it is about."""
        problems: list[InitErrorDetails] = []

        def refuse(loc: tuple[str | int, ...], message: str, value: Any) -> None:
            error = PydanticCustomError("value_error", message)
            problems.append(InitErrorDetails(type=error, loc=loc, input=value))

        names = [f.name for f in self.features]
        for i, name in enumerate(names):
            if name in names[:i]:
                refuse(("features", i, "name"), f"duplicate feature name {name!r}", name)
        if self.target in names:
            refuse(("target",), "must not also be a feature", self.target)
        allowed = CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS
        if self.metric is None:
            self.metric = allowed[0]
        elif self.metric not in allowed:
            message = f"{self.metric!r} is not one of {list(allowed)} for {self.task}"
            refuse(("metric",), message, self.metric)
        families = self.retrain.families
        if families is not None and not families:
            refuse(("retrain", "families"), "at least one family, or null for all", families)
        for i, family in enumerate(families or []):
            if family not in self.all_families:
                message = f"{family!r} is not one of {list(self.all_families)} for {self.task}"
                refuse(("retrain", "families", i), message, family)
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def normalise_label(self, value: Any) -> str | float:
        """The canonical form of a target value: a class name (tuning.labels.class_name: 1,
        1.0 and "1" are the same class) or a finite float; ValueError if not."""
        if self.task == "classification":
            return class_name(value)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and value == value and abs(value) != float("inf"):
            return float(value)
        raise ValueError("must be a finite number")

    @property
    def all_families(self) -> tuple[str, ...]:
        return CLASSIFICATION_FAMILIES if self.task == "classification" else REGRESSION_FAMILIES

    @property
    def search_families(self) -> tuple[str, ...]:
        return tuple(self.retrain.families) if self.retrain.families else self.all_families

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.type == "categorical"]


def _check_param(key: str, value: Any, depth: int = 0) -> None:
    """A fixed parameter is a JSON scalar or a short list of them (e.g. hidden_layer_sizes),
    with integers small enough for every JSON reader and no value that could not be stored."""
    if depth > 1 or (isinstance(value, list) and len(value) > 20):
        raise ValueError(f"fixed_params.{key}: a scalar or a short flat list")
    if isinstance(value, list):
        for item in value:
            _check_param(key, item, depth + 1)
        return
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > PARAM_INT_MAX:
            raise ValueError(f"fixed_params.{key}: integers within ±2**53")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"fixed_params.{key}: a finite number")
        return
    if isinstance(value, str) and len(value) <= MAX_NAME_LENGTH:
        return
    raise ValueError(f"fixed_params.{key}: a number, a short string, a boolean or null")
