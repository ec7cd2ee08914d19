"""The recipe's schema: pydantic models with ``extra="forbid"`` everywhere.

Component tables (``[separator]``, ``[critics.vocals]``, ``[[data.paired]]``...) are selected by
their ``type`` and validated by that component's own ``Config`` in :mod:`sepkit.recipe.load`, so that
an error can name the exact TOML path.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    field_validator,
    model_validator,
)

from ..component import Component, ComponentConfig, TomlOptional

SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class Strict(BaseModel):
    """Validated once, then never changed: code that needs another value makes a copy."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentSpec(BaseModel):
    """``type = "<registered name>"`` plus that component's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: ClassVar[str] = ""

    type: str = Field(description="Registered name of the component (see `sepkit plugins`).")
    _config: ComponentConfig | None = PrivateAttr(default=None)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def bind(self, component: type[Component]) -> None:
        """Parse this table with the registered class's ``Config``, once, when the recipe is
        validated; components are then built from the parsed config (no second validation)."""
        self._config = component.parse_config(self.params)

    @property
    def is_bound(self) -> bool:
        return self._config is not None

    @property
    def config(self) -> ComponentConfig:
        if self._config is None:
            raise RuntimeError(f"{self.kind} '{self.type}' has not been validated against its Config")
        return self._config


class RepresentationSpec(ComponentSpec):
    kind: ClassVar[str] = "representation"


class SeparatorSpec(ComponentSpec):
    kind: ClassVar[str] = "separator"

    init: str | None = Field(
        None,
        description=(
            "A sepkit model file whose separator weights training starts from (fine-tuning); same separator "
            "type, sources, channels, sample rate and representation. Relative paths: from the recipe's folder."
        ),
    )


class CriticSpec(ComponentSpec):
    kind: ClassVar[str] = "critic"


class DivergenceSpec(ComponentSpec):
    kind: ClassVar[str] = "divergence"


class DatasetSpec(ComponentSpec):
    kind: ClassVar[str] = "dataset"


class AudioConfig(Strict):
    sample_rate: PositiveInt = Field(8192, description="Rate every file is resampled to (Hz).")
    channels: PositiveInt = Field(
        1, description="Channels the models see: 1 downmixes to mono (mean of channels)."
    )
    clip: bool = Field(True, description="Clip samples to [-1, 1] after resampling (as the paper).")


class DataConfig(Strict):
    paired: list[DatasetSpec] = Field(default_factory=list, description="Paired multitrack data (mixture + every source).")
    mixtures: list[DatasetSpec] = Field(default_factory=list, description="Unpaired mixtures.")
    solo: dict[str, list[DatasetSpec]] = Field(
        default_factory=dict, description="Unpaired solo recordings, per source."
    )
    validation: list[DatasetSpec] = Field(default_factory=list, description="Validation sets (paired).")
    test: list[DatasetSpec] = Field(default_factory=list, description="Test sets (paired), reported per subset.")
    residency: Literal["auto", "features", "stream"] = Field(
        "auto",
        description='Where training excerpts come from: "features" encodes every track once and keeps the '
        'features on the training device (fastest); "stream" leaves the waveforms in the audio cache on disk '
        'and encodes each batch on the device (any corpus size); "auto" keeps features while they fit in '
        "memory_budget and streams the largest pools beyond it.",
    )
    memory_budget: TomlOptional[str | int] = Field(
        None,
        description='Device memory the resident features may take with residency = "auto": a size such as '
        '"24GB" or "512MiB" (or a number of bytes), or a share of the device\'s memory such as "40%" '
        "(false: 40% of the device's memory).",
    )

    @field_validator("memory_budget")
    @classmethod
    def _budget(cls, value: str | int | None) -> str | int | None:
        if value is not None:
            parse_memory_budget(value)
        return value


#: Share of the training device's memory the resident features may take by default.
DEFAULT_MEMORY_SHARE = 0.4
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory_budget(value: str | int | None) -> tuple[str, float]:
    """``("bytes", n)`` or ``("share", fraction)`` from ``data.memory_budget`` (None: the default share)."""
    if value is None:
        return ("share", DEFAULT_MEMORY_SHARE)
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"memory_budget must be positive, got {value}")
        return ("bytes", float(value))
    text = str(value).strip().lower().replace(" ", "")
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)(%|[kmgt]i?b|b|)", text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"memory_budget {value!r}: expected a size such as \"24GB\" or \"512MiB\", or a share such as \"40%\"")
    number, unit = float(match.group(1)), match.group(2)
    if unit == "%":
        if number > 100:
            raise ValueError(f"memory_budget {value!r}: a share is at most 100%")
        return ("share", number / 100)
    return ("bytes", number * _UNITS[unit])


class TrainingConfig(Strict):
    batch_size: PositiveInt = Field(64, description="Examples per batch, for every role.")
    learning_rate: PositiveFloat = Field(5e-5, description="Adam learning rate of the separator.")
    critic_learning_rate: PositiveFloat = Field(5e-5, description="Adam learning rate of each critic.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas (both optimisers).")
    critic_betas: TomlOptional[tuple[float, float]] = Field(
        None, description="Adam betas of the critics (false: the same as betas)."
    )
    critic_iterations: NonNegativeInt | Literal["auto"] = Field(
        5,
        description='Critic updates per separator update; "auto": the divergence\'s own default '
        "(5 for wasserstein-gp, 1 for js and kl).",
    )
    alpha: NonNegativeFloat = Field(
        0.001,
        description='Weight of the adversarial term ("fixed"), or with adversarial_weighting = "balanced" '
        "the ratio of its gradient norm to the supervised term's at the separator's output.",
    )
    adversarial_weighting: Literal["fixed", "balanced"] = Field(
        "fixed",
        description='"fixed": alpha multiplies the adversarial term (the paper). "balanced": the term is '
        "rescaled every update so that its gradient at the separator's output is alpha times the "
        "supervised term's (norms smoothed by balance_smoothing).",
    )
    balance_smoothing: float = Field(
        0.9, ge=0.0, lt=1.0, description="EMA decay of the gradient norms of the balanced weighting."
    )
    alpha_warmup_updates: NonNegativeInt = Field(
        0, description="Linear ramp of alpha from 0 over this many separator updates (0: none)."
    )
    beta: NonNegativeFloat = Field(0.001, description="Weight of the additive penalty on unpaired mixtures (only with critics).")
    max_grad_norm: TomlOptional[PositiveFloat] = Field(
        None, description="Clip the separator's gradient norm to this (false: no clipping)."
    )
    critic_max_grad_norm: TomlOptional[PositiveFloat] = Field(
        None, description="Clip each critic's gradient norm to this (false: no clipping)."
    )
    ema: TomlOptional[float] = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="Polyak (exponential moving) average of the separator's weights with this decay, "
        "e.g. 0.99; validation, selection and the saved models use the average (false: off).",
    )
    loudness_augmentation: TomlOptional[tuple[PositiveFloat, PositiveFloat]] = Field(
        (0.2, 1.2),
        description="Unpaired data only: linear magnitudes scaled by U(low, high) per example; false disables.",
    )
    updates_per_epoch: PositiveInt = Field(1000, description="Separator updates per epoch.")
    max_epochs: PositiveInt = Field(1000, description="Hard limit on epochs.")
    early_stopping: bool = Field(True, description="Stop when validation stops improving.")
    select: Literal["validation-loss", "validation-sdr", "last"] = Field(
        "validation-loss",
        description="Which epoch's separator becomes model.safetensors (and drives early stopping): the "
        "lowest validation loss (the paper), the highest mean validation SDR, or the last. Every rule's "
        "model is kept (model-by-*.safetensors) so that `sepkit report` can compare them.",
    )
    select_subset: TomlOptional[str | tuple[str, ...]] = Field(
        None,
        description="Validation subset (its name, e.g. \"field\"), or a list of them, whose tracks "
        "selection scores together (false: all).",
    )
    patience: NonNegativeInt = Field(
        6, description="Epochs without improvement tolerated before stopping (0: stop at the first)."
    )
    seed: int = Field(0, description="Seed for weights, sampling and augmentation.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast on CUDA.")
    compile: bool = Field(False, description="torch.compile the networks.")
    log_every: PositiveInt = Field(10, description="Separator updates between metrics.jsonl lines.")
    loggers: list[str] = Field(
        default_factory=lambda: ["jsonl"],
        description='Where metrics and validation records go, by registered logger name: "jsonl" '
        '(metrics.jsonl, validation.jsonl: what sepkit report and the curves read), "csv", '
        '"tensorboard" (needs the tensorboard extra), or a plugin\'s (docs/components/loggers.md).',
    )
    max_nonfinite: PositiveInt = Field(
        5, description="Non-finite steps tolerated before rolling back to the last good state."
    )

    @field_validator("select_subset")
    @classmethod
    def _subsets_named_once(cls, value: str | tuple[str, ...] | None) -> str | tuple[str, ...] | None:
        if isinstance(value, tuple) and (not value or len(set(value)) != len(value)):
            raise ValueError("a list of validation subsets must be non-empty and name each subset once")
        return value

    @property
    def selection_subsets(self) -> tuple[str, ...] | None:
        """``select_subset`` as a tuple of names (None: every validation track)."""
        if self.select_subset is None:
            return None
        return (self.select_subset,) if isinstance(self.select_subset, str) else self.select_subset

    @field_validator("loudness_augmentation")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"low bound {value[0]} is above high bound {value[1]}")
        return value


class EvaluationConfig(Strict):
    protocol: Literal["paper", "bsseval-v4"] = Field("paper", description="Scoring protocol.")
    overlap: float = Field(
        0.0, ge=0.0, lt=1.0, description="Window overlap at inference (0: the paper's non-overlapping windows)."
    )
    batch_size: PositiveInt = Field(16, description="Windows per forward pass at inference.")


class Recipe(Strict):
    """One experiment: sources, audio, components, data, training, evaluation and its variants."""

    name: str = Field(description="Short name of the experiment.")
    description: str = Field("", description="Free text.")
    sources: list[str] = Field(min_length=1, description="Source names, in output order.")
    paths: dict[str, str] = Field(
        default_factory=dict, description="Named paths, substituted as ${name} in any string."
    )
    audio: AudioConfig = Field(default_factory=AudioConfig)
    representation: RepresentationSpec
    separator: SeparatorSpec
    critics: dict[str, CriticSpec] = Field(
        default_factory=dict, description="One critic per source that gets one (none: supervised only)."
    )
    divergence: DivergenceSpec = Field(
        default_factory=lambda: DivergenceSpec(type="wasserstein-gp"),
        description="How critics become training signals.",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named variants: tables deep-merged over this recipe (e.g. baseline, vocals-critic).",
    )

    @field_validator("sources")
    @classmethod
    def _valid_sources(cls, sources: list[str]) -> list[str]:
        for name in sources:
            if not SOURCE_NAME.match(name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits, '-' or '_'")
            if name == "mixture":
                raise ValueError("'mixture' is not a source name")
        if len(set(sources)) != len(sources):
            raise ValueError(f"sources are listed twice: {sources}")
        return sources

    @model_validator(mode="after")
    def _known_sources(self) -> "Recipe":
        for key in self.critics:
            if key not in self.sources:
                raise ValueError(f"critics.{key}: '{key}' is not one of the sources {self.sources}")
        for key in self.data.solo:
            if key not in self.sources:
                raise ValueError(f"data.solo.{key}: '{key}' is not one of the sources {self.sources}")
        return self

    # -- what a variant's training will use ------------------------------------------------
    @property
    def uses_unpaired(self) -> bool:
        """Unpaired data (and so the adversarial term and the additive penalty) is used exactly when
        the recipe has critics; without critics, training is supervised only whatever ``beta`` is."""
        return bool(self.critics)

    def component_specs(self) -> list[tuple[str, ComponentSpec]]:
        """Every component table with its TOML path."""
        specs: list[tuple[str, ComponentSpec]] = [
            ("representation", self.representation),
            ("separator", self.separator),
            ("divergence", self.divergence),
        ]
        specs += [(f"critics.{k}", v) for k, v in self.critics.items()]
        for role in ("paired", "mixtures", "validation", "test"):
            specs += [(f"data.{role}[{i}]", s) for i, s in enumerate(getattr(self.data, role))]
        for source, items in self.data.solo.items():
            specs += [(f"data.solo.{source}[{i}]", s) for i, s in enumerate(items)]
        return specs
