"""Typed, validated configuration: one frozen dataclass per stage, JSON round-trip.

Each field carries its help text in its metadata (``field(metadata={"help": ...})``), and
where it has them its allowed values (``choices``), its lowest valid value (``min``), a
label for forms (``label``) and what an empty value means (``unset``). The CLI options
(``mgi_core.config_cli``) and the Train page's inputs are generated from these fields, so
they show the same words and bounds. ``__post_init__`` rejects bad values with a message
that says what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from mgi_core.errors import ConfigError

C = TypeVar("C", bound="BaseConfig")


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A config field: its default, its help text and optional metadata.

    ``meta`` keys: ``choices`` (the allowed values), ``min`` (the lowest valid value,
    checked by ``BaseConfig.check_minimums``), ``label`` (a form label, when the field's
    name does not read well), ``unset`` (what ``None`` means, e.g. 'all').
    """
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class BaseConfig:
    """Shared JSON round-trip and help lookup for the stage configs."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__}: unknown field(s) {unknown}; allowed: {sorted(names)}"
            )
        return cls(**data)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    @classmethod
    def field_info(cls, name: str) -> dataclasses.Field:
        """The dataclass field ``name`` (its ``metadata`` holds help, choices, min …)."""
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f
        raise ConfigError(f"{cls.__name__} has no field {name!r}")

    @classmethod
    def help(cls, name: str) -> str:
        return cls.field_info(name).metadata.get("help", "")

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of field ``name`` (a fresh copy for dict defaults)."""
        f = cls.field_info(name)
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return f.default

    def check_minimums(self) -> None:
        """Raise ConfigError for a field below its metadata ``min`` (``None`` passes)."""
        for f in dataclasses.fields(self):
            low, value = f.metadata.get("min"), getattr(self, f.name)
            if low is not None and value is not None and value < low:
                raise ConfigError(f"{f.name} must be >= {low}, got {value}")


@dataclass(frozen=True)
class IngestConfig(BaseConfig):
    """How a review file is read, validated and stored."""

    category_separator: str = _f(" > ", "Separator between levels of the category path.",
                                 label="Category separator")
    rating_min: float = _f(1.0, "Lowest valid rating; smaller values reject the row.")
    rating_max: float = _f(5.0, "Highest valid rating; larger values reject the row.")
    strict: bool = _f(False, "Reject the whole file when any row is invalid.")
    max_rows: int = _f(5_000_000, "Largest number of data rows accepted in one file.", min=1)
    max_bytes: int = _f(4 * 1024**3, "Largest file size in bytes accepted.", min=1)
    min_year: int = _f(1971, "Earliest plausible review date (year); earlier rejects the row.")
    max_year: int = _f(2100, "Latest plausible review date (year); later rejects the row.")
    redact_pii: bool = _f(
        True, "Replace e-mail addresses, phone numbers and URLs in review text with [email], "
        "[phone], [url] before storing.", label="Redact e-mail addresses, phones and URLs")
    hash_user_ids: bool = _f(
        False, "Store user ids as salted SHA-256 hashes; the salt stays outside the database "
        "($MGI_USER_ID_SALT, the file named by $MGI_SALT_FILE, or ~/.config/mgi/user_id_salt, "
        "made on first use).", label="Hash user ids")

    def __post_init__(self) -> None:
        if not self.category_separator:
            raise ConfigError("category_separator must be a non-empty string, e.g. ' > '")
        if not self.rating_min < self.rating_max:
            raise ConfigError(
                f"rating_min ({self.rating_min}) must be below rating_max ({self.rating_max})"
            )
        self.check_minimums()
        if not 1 <= self.min_year <= self.max_year <= 9999:
            raise ConfigError(
                f"min_year ({self.min_year}) and max_year ({self.max_year}) must satisfy "
                "1 <= min_year <= max_year <= 9999"
            )


@dataclass(frozen=True)
class SplitConfig(BaseConfig):
    """Temporal leave-last-out split per user (README, "Review files": the evaluation protocol)."""

    min_reviews: int = _f(
        3, "Users with at least this many reviews give their latest to test, the next to val."
    )

    def __post_init__(self) -> None:
        if self.min_reviews < 3:
            raise ConfigError(
                f"min_reviews must be >= 3 (one train, one validation, one test review), "
                f"got {self.min_reviews}"
            )


TASKS: tuple[str, ...] = ("overall", "category", "subcategory", "match")
STRATEGIES: tuple[str, ...] = ("lora", "adalora", "full", "freeze")
ADVERSARIAL: tuple[str, ...] = ("none", "fgm", "pgd")
AUGMENTATIONS: tuple[str, ...] = ("delete", "swap", "synonym", "backtranslate")
TASK_WEIGHTINGS: tuple[str, ...] = ("fixed", "uncertainty")
BALANCES: tuple[str, ...] = ("class_weights", "none")
DEVICES: tuple[str, ...] = ("auto", "cuda", "mps", "cpu")
DEFAULT_BASE_MODEL = "bundled:all-MiniLM-L6-v2"


def _default_weights() -> dict[str, float]:
    return {"overall": 2.0, "category": 0.5, "subcategory": 0.5, "match": 1.0}


@dataclass(frozen=True)
class TrainConfig(BaseConfig):
    """Multi-task fine-tuning of the encoder (README, "How it works").

    Defaults run a LoRA epoch over a few thousand reviews on a 2-core CPU in minutes.
    """

    base_model: str = _f(
        DEFAULT_BASE_MODEL,
        "Encoder to start from: the bundled all-MiniLM-L6-v2, a local sentence-transformers / "
        "Hugging Face folder, or a hub id when the machine is online.",
        label="Base encoder",
    )
    tasks: tuple[str, ...] = _f(
        TASKS, "Tasks to train: overall, category, subcategory, match.", choices=TASKS
    )
    task_weights: dict[str, float] = field(
        default_factory=_default_weights,
        metadata={"help": "Loss weight λ per task: L = Σ λ_k · ℓ_k. Defaults (overall 2, "
                  "category 0.5, subcategory 0.5, match 1) were chosen on the validation split "
                  "of the Digital Music data: with overall at 1 the contrastive loss crowds out "
                  "the sentiment signal."},
    )
    strategy: str = _f(
        "lora",
        "lora: low-rank adapters (peft); adalora: adapters whose rank budget is reallocated "
        "and shrunk during training (AdaLoRA, peft); full: every weight; freeze: the lower N "
        "layers frozen (N = all layers trains the heads only, a linear probe of the base "
        "encoder).",
        choices=STRATEGIES,
    )
    freeze_layers: int = _f(
        4, "With strategy 'freeze': how many lower layers stay frozen.", min=0,
        label="Frozen layers",
    )
    lora_rank: int = _f(8, "LoRA rank r.", min=1, label="LoRA rank")
    lora_alpha: int = _f(16, "LoRA scaling alpha.", label="LoRA alpha")
    lora_dropout: float = _f(0.05, "Dropout inside the LoRA adapters.", label="LoRA dropout")
    lora_targets: tuple[str, ...] = _f(
        ("query", "key", "value", "dense"), "Module names the adapters attach to.",
        label="LoRA target modules",
    )
    adalora_init_rank: int = _f(
        12, "AdaLoRA: rank every adapter starts with.", min=1, label="AdaLoRA initial rank"
    )
    adalora_target_rank: int = _f(
        4, "AdaLoRA: average rank per adapter the budget shrinks to by the end.", min=1,
        label="AdaLoRA target rank",
    )
    adalora_tinit: float = _f(
        0.1, "AdaLoRA: share of the steps trained at the initial rank before pruning starts.",
        min=0.0, label="AdaLoRA warm-up",
    )
    adalora_tfinal: float = _f(
        0.2, "AdaLoRA: share of the last steps trained with the final budget fixed.", min=0.0,
        label="AdaLoRA final share",
    )
    adalora_delta_t: int = _f(
        5, "AdaLoRA: steps between two reallocations of the rank budget.", min=1,
        label="AdaLoRA interval",
    )
    adversarial: str = _f(
        "none", "Adversarial training on the word embeddings: none; fgm (one perturbation of "
        "norm epsilon along the gradient, Miyato et al.); pgd (several projected steps inside "
        "the epsilon ball, Madry et al.). The adversarial loss is added to the clean one.",
        choices=ADVERSARIAL,
    )
    adv_epsilon: float = _f(
        0.25, "Norm of the adversarial perturbation of a review's word embeddings (FGM; PGD's "
        "ball), per review. 0.25 is the usual FGM ε = 1 spread over a batch of 16 reviews; "
        "at 1.0 per review (MiniLM's token embeddings have norm ≈ 1.1) the category heads "
        "collapsed on the Digital Music data (README, \"Training options\").",
        min=0.0, label="Adversarial epsilon",
    )
    pgd_steps: int = _f(3, "PGD: perturbation steps per training step.", min=1,
                        label="PGD steps")
    pgd_alpha: float = _f(0.1, "PGD: norm of each step (projected back into the ball).",
                          min=0.0, label="PGD step size")
    augment: tuple[str, ...] = _f(
        (), "Augment training reviews (never validation or test; labels unchanged): delete "
        "(random word deletion), swap (random word swaps), synonym (replacement from the "
        "shipped English/Chinese lexicon), backtranslate (needs a local translation model "
        "folder). Empty = off.",
        choices=AUGMENTATIONS,
    )
    augment_rate: float = _f(
        0.1, "Share of a review's words each augmentation changes.", min=0.0,
        label="Augmentation rate",
    )
    augment_share: float = _f(
        0.5, "Share of the training reviews augmented in each epoch (drawn anew each epoch).",
        min=0.0, label="Augmented share",
    )
    backtranslation_model: str = _f(
        "", "Folder with a local translation model pair for 'backtranslate' (README, "
        "\"Training options\"); empty: back-translation is skipped with a notice.",
        label="Back-translation model folder",
    )
    task_weighting: str = _f(
        "fixed", "fixed: the λ above; uncertainty: learned weights that balance tasks whose "
        "losses differ in scale (Kendall et al. 2018): L = Σ exp(-s_k)·ℓ_k + s_k, the s_k "
        "trained with the heads, the weights logged and plotted on the Metrics page. Early "
        "stopping always uses the fixed λ.",
        choices=TASK_WEIGHTINGS,
    )
    weighting_learning_rate: float = _f(
        0.025, "Learning rate of the learned task weights (task_weighting 'uncertainty'): "
        "fast enough that the weights settle within an epoch of a few hundred steps.",
        label="Task-weight learning rate",
    )
    epochs: int = _f(1, "Passes over the training reviews.", min=1)
    head_warmup_epochs: int = _f(
        10, "Linear probe first (LP-FT): train the heads this many epochs on the unchanged "
        "encoder's embeddings (computed once) before the encoder moves, so random heads do not "
        "distort it. 0 = off.",
        min=0, label="Head warm-up epochs",
    )
    batch_size: int = _f(16, "Reviews per step (and pairs per step for 'match').", min=2)
    learning_rate: float = _f(
        3e-4, "Peak AdamW learning rate of the encoder (2e-5 suits 'full').",
        label="Encoder learning rate",
    )
    head_learning_rate: float = _f(2e-3, "Peak learning rate of the task heads.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    warmup_ratio: float = _f(
        0.1, "Share of steps with linear warm-up; then linear decay to 0.", min=0.0,
        label="Warm-up ratio",
    )
    dropout: float = _f(0.1, "Dropout before each head.", min=0.0)
    grad_clip: float = _f(
        1.0, "Clip the gradient norm to this value (0 = off).", label="Gradient clipping"
    )
    max_seq_length: int = _f(
        64, "Tokens per review in training (longer texts are truncated; 64 keeps a CPU epoch "
        "over a few thousand reviews to minutes).",
        min=8, label="Max sequence length",
    )
    max_train_reviews: int | None = _f(
        None, "Train on at most this many reviews (a subset).", unset="all",
        label="Max training reviews",
    )
    like_threshold: float = _f(4.0, "A rating at or above this counts as liked ('overall').")
    balance: str = _f(
        "class_weights", "Class imbalance: 'class_weights' (loss weights) or 'none'.",
        choices=BALANCES,
    )
    match_scale: float = _f(20.0, "Similarity scale of the in-batch contrastive loss.")
    patience: int = _f(1, "Early stopping: epochs without a better validation objective.", min=0)
    eval_max_reviews: int = _f(
        2000, "Validation reviews scored per epoch (a fixed sample).", min=1,
        label="Validation reviews",
    )
    seed: int = _f(13, "Random seed (data order, initial heads, dropout).")
    deterministic: bool = _f(True, "Deterministic algorithms (same seed and data → same model).")
    device: str = _f("auto", "auto (CUDA → MPS → CPU), cuda, mps or cpu.", choices=DEVICES)
    embed_batch_size: int = _f(
        64, "Batch size when embedding reviews after training.", min=1,
        label="Embedding batch size",
    )
    embed_max_seq_length: int = _f(
        256, "Tokens per review when embedding after training (may exceed the training length).",
        min=8, label="Embedding max length",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"tasks {list(self.tasks)} not allowed; choose from {list(TASKS)}")
        unknown = sorted(set(self.task_weights) - set(TASKS))
        if unknown:
            raise ConfigError(f"task_weights names unknown task(s) {unknown}; use {list(TASKS)}")
        if any(w < 0 for w in self.task_weights.values()):
            raise ConfigError("task weights must be >= 0")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy {self.strategy!r} not allowed; choose from {STRATEGIES}")
        augment = self.augment
        if isinstance(augment, str):  # one op, or several comma-separated
            augment = [a.strip() for a in augment.split(",") if a.strip()]
        object.__setattr__(self, "augment", tuple(augment))
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise ConfigError(f"augment {bad} not allowed; choose from {list(AUGMENTATIONS)}")
        for name, allowed in (("adversarial", ADVERSARIAL),
                              ("task_weighting", TASK_WEIGHTINGS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} not allowed; choose from "
                                  f"{list(allowed)}")
        if self.balance not in BALANCES:
            raise ConfigError("balance must be 'class_weights' or 'none'")
        if self.device not in DEVICES:
            raise ConfigError("device must be one of auto, cuda, mps, cpu")
        self.check_minimums()
        if not 0 <= self.augment_rate <= 0.5 or not 0 <= self.augment_share <= 1:
            raise ConfigError("augment_rate must be in [0, 0.5] and augment_share in [0, 1]")
        if self.adalora_target_rank > self.adalora_init_rank:
            raise ConfigError(
                f"adalora_target_rank ({self.adalora_target_rank}) must not exceed "
                f"adalora_init_rank ({self.adalora_init_rank})"
            )
        if self.adalora_tinit + self.adalora_tfinal >= 1:
            raise ConfigError("adalora_tinit + adalora_tfinal must be below 1 (the budget "
                              "shrinks in the steps between them)")
        if self.max_train_reviews is not None and self.max_train_reviews < 2:
            raise ConfigError("max_train_reviews must be >= 2 or empty (all)")
        if not 0 <= self.warmup_ratio < 1 or not 0 <= self.dropout < 1:
            raise ConfigError("warmup_ratio and dropout must be in [0, 1)")
        if min(self.learning_rate, self.head_learning_rate, self.weighting_learning_rate) <= 0:
            raise ConfigError("learning rates must be > 0")

    def weight(self, task: str) -> float:
        return float(self.task_weights.get(task, 1.0))


REFERENCE = "reference"
PRETRAINED = "pretrained"


class TrainingVariant(NamedTuple):
    """One variant: what it changes, the TrainConfig fields it sets over the budget's
    config, and whether it fine-tunes at all (``pretrained`` does not)."""

    changes: str
    overrides: Mapping[str, Any]
    fine_tune: bool = True


TRAINING_VARIANTS: dict[str, TrainingVariant] = {
    REFERENCE: TrainingVariant("nothing: the budget's config as given", {}),
    "adalora": TrainingVariant("AdaLoRA adapters (rank budget reallocated and shrunk)",
                               {"strategy": "adalora"}),
    "fgm": TrainingVariant("adversarial training, FGM", {"adversarial": "fgm"}),
    "pgd": TrainingVariant("adversarial training, PGD", {"adversarial": "pgd"}),
    "augment": TrainingVariant("augmentation: word deletion, swaps, lexicon synonyms",
                               {"augment": ("delete", "swap", "synonym")}),
    "uncertainty": TrainingVariant("task weights learned (uncertainty weighting)",
                                   {"task_weighting": "uncertainty"}),
    PRETRAINED: TrainingVariant("no fine-tuning: the pre-trained encoder (version base)", {},
                                fine_tune=False),
}


@dataclass(frozen=True)
class ProfileConfig(BaseConfig):
    """How user interest profiles are built from a user's *train* review embeddings."""

    rating_weighting: str = _f(
        "linear", "Review weight from its rating: 'linear' (w = rating) or 'none' (w = 1)."
    )
    half_life_days: float | None = _f(
        None, "Recency weighting: a review this many days older than the user's latest counts "
        "half (empty = off).",
    )
    max_interests: int = _f(5, "Most fine-interest clusters per user (k is chosen 1..this).")
    min_silhouette: float = _f(
        0.08, "Split a user into k > 1 interests only when the clustering's silhouette "
        "exceeds this.",
    )
    min_spread: float = _f(
        0.1, "Look for several interests only when the user's reviews differ this much "
        "(mean pairwise cosine distance).",
    )
    n_keywords: int = _f(5, "Keywords per fine interest (c-TF-IDF).")
    n_representative: int = _f(2, "Representative reviews per fine interest.")
    like_threshold: float = _f(4.0, "A rating at or above this counts as liked.")
    rating_midpoint: float = _f(3.0, "Neutral rating: sentiment = (rating - midpoint) / spread.")
    rating_spread: float = _f(2.0, "Half the rating range, for sentiment in [-1, 1].")

    def __post_init__(self) -> None:
        if self.rating_weighting not in ("linear", "none"):
            raise ConfigError("rating_weighting must be 'linear' or 'none'")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise ConfigError("half_life_days must be > 0 or empty (off)")
        if not 1 <= self.max_interests <= 10:
            raise ConfigError("max_interests must be in 1..10")
        if self.rating_spread <= 0:
            raise ConfigError("rating_spread must be > 0")
