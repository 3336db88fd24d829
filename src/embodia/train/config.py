"""Typed training configuration and the named presets (`embodia train --preset base`).

`TrainConfig` is the one place a training setting is declared: `embodia train`'s options are generated
from its fields (`embodia.configs`), a preset is a `TrainConfig` with some fields set, a run writes its
resolved config to `train_config.json` (`embodia train --config FILE` runs it again), and the recipes in
`embodia.recipes` chain configs like these into the shipped policies. Command-line flags override a
preset (or a saved config) field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Literal

from embodia.configs import (
    from_dict,
    nested,
    non_negative,
    opt,
    positive_float,
    positive_int,
    positive_numbers,
    probabilities,
    probability,
    task_files,
    to_dict,
)
from embodia.policy.model import VLAConfig


@dataclass
class LanguageAugConfig:
    """Language augmentations: make the policy follow an instruction's meaning, not its exact string."""

    # The other phrasings come from whoever starts the run (`train(..., phrasings=)`): `embodia train`
    # and the recipes pass the tabletop's (each family's train and augment templates). With only four
    # phrasings per family the policy can key on exact strings; varied phrasings make it follow the
    # task's meaning, which is what held-out templates and free-text `embodia run` instructions need.
    # Instructions the source has no phrasings for (not tabletop templates) are never swapped.
    paraphrase: float = opt(
        0.0,
        "swap each sample's instruction for another phrasing of the same tabletop task with this "
        "probability, so the policy follows meaning, not exact strings",
        parse=probability,
        metavar="P",
    )
    paraphrase_carriers: bool = opt(
        False, "with --paraphrase: also swap in phrasings wrapped in carrier words ('please ...', '... now')"
    )
    # Word dropout: each word token of an instruction (not [CLS]/[SEP]) is hidden from the policy, so no
    # single word carries the task alone; an unseen verb at test time is then one uninformative word among
    # others the policy has learnt to use. The pooled vector is kept whole.
    word_dropout: float = opt(
        0.0,
        "hide each word of an instruction from the policy with probability P (e.g. 0.15), so no single "
        "word carries the task: helps with verbs it has never seen",
        parse=probability,
        metavar="P",
    )
    # The pooled sentence vector drives FiLM in the vision encoder, so an unfamiliar phrasing perturbs what
    # the policy *sees*, not only what it is told: on the shipped base, "hoist the red cube into the air"
    # with the pooled vector of "raise the red cube" (its own tokens kept) succeeds 24/25 times instead of
    # 19/25. sentence_mix moves a sample's vector a uniform fraction of the way toward another phrasing of
    # the same task; sentence_noise adds s x a random unit vector, renormalised (cosine ~ 1 / sqrt(1 + s^2)).
    sentence_mix: float = opt(
        0.0,
        "with --paraphrase: move each sample's sentence vector (which drives FiLM in the vision "
        "encoder) part of the way toward another phrasing of its task with probability P",
        parse=probability,
        metavar="P",
    )
    sentence_noise: float = opt(
        0.0,
        "add S x a random unit vector to each sentence vector during training (0.5: cosine ~0.9)",
        parse=non_negative,
        metavar="S",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.paraphrase <= 1:
            raise ValueError(f"paraphrase is a probability in [0, 1], got {self.paraphrase}")
        if self.paraphrase_carriers and self.paraphrase == 0:
            raise ValueError(
                "paraphrase_carriers wraps the swapped-in phrasings: set paraphrase > 0 too (e.g. 0.5)"
            )
        if not 0 <= self.word_dropout < 1:
            raise ValueError(f"word_dropout is a probability in [0, 1), got {self.word_dropout}")
        if not 0 <= self.sentence_mix <= 1:
            raise ValueError(f"sentence_mix is a probability in [0, 1], got {self.sentence_mix}")
        if self.sentence_mix > 0 and self.paraphrase == 0:
            raise ValueError("sentence_mix mixes toward other phrasings: set paraphrase > 0 too (e.g. 0.5)")
        if not 0 <= self.sentence_noise <= 4:
            raise ValueError(
                f"sentence_noise is a scale in [0, 4] (1: cosine ~0.7), got {self.sentence_noise}"
            )


@dataclass
class TrainConfig:
    """One training run: data, schedule, model, augmentations. The CLI's `embodia train` options, the
    presets below, the recipes and a run's `train_config.json` are all this one dataclass."""

    datasets: list[str] = opt(
        factory=list, help="LeRobotDataset folders (v3.0 or v2.1)", positional=True, nargs="*"
    )
    # Co-training a small new dataset with the base's data (e.g. [1, 1]) keeps the base's skills.
    dataset_weights: list[float] | None = opt(
        None,
        "sampling weight per dataset, comma-separated in the order given, e.g. 1,1 to co-train a "
        "small new dataset with a large one (default: in proportion to their frames)",
        flag="weights",
        parse=positive_numbers,
    )
    # Distillation keeps what the starting policy does on the data it already knew: on a dataset with
    # weight 1 the target is the --init-from policy's own output for the same noisy chunk, not the
    # recorded actions, so the co-training data pulls toward the base's behaviour, not toward refitting
    # 60 episodes (`embodia teach` distils its co-training datasets).
    distill: list[float] | None = opt(
        None,
        "with --init-from: per dataset, in the order given, how much of the training target is the "
        "starting policy's own output instead of the recorded actions (0: none, 1: all), e.g. 0,1,1",
        parse=probabilities,
    )
    out: str | None = opt(None, "run folder (default ./embodia_runs/train/<time>-<name>)")
    steps: int = opt(2000, "optimizer steps", parse=positive_int)
    batch_size: int = opt(32, "samples per step and process", parse=positive_int)
    lr: float = opt(3e-4, "peak learning rate (AdamW)", parse=positive_float)
    min_lr_ratio: float = opt(
        0.05, "the cosine ends at lr x this, exactly at the last step", parse=probability
    )
    # Setting it shorter than `steps` reproduces the classic "LR hit its floor early" bug; the doctor flags it.
    decay_steps: int | None = opt(
        None, "steps over which the cosine decays (default: all of them)", parse=positive_int, cli=False
    )
    warmup_steps: int = opt(200, "linear warmup steps (capped at steps / 5)", parse=positive_int)
    weight_decay: float = opt(1e-4, "AdamW weight decay", parse=non_negative)
    grad_clip: float = opt(1.0, "clip the gradient's global norm to this", parse=positive_float)
    ema_decay: float = opt(
        0.999, "EMA of the weights (0: off); the policy saved is the EMA", parse=probability
    )
    save_every: int = opt(500, "checkpoint every N steps", parse=positive_int, metavar="N")
    keep_checkpoints: int = opt(2, "checkpoints kept besides the final policy", parse=positive_int)
    log_every: int = opt(10, "log metrics every N steps", parse=positive_int, metavar="N")
    seed: int = opt(0, "seed of every random draw of the run (data order, augmentations, init)")
    augment: bool = opt(True, "image augmentation (random shift)")
    aug_shift: float = opt(
        0.08, "random shift as a fraction of the image side (pad-and-crop)", parse=probability
    )
    language: LanguageAugConfig = nested(LanguageAugConfig, "language augmentations")
    # Only for embodiments whose action and state name the same joints (see EmbodimentInfo.delta_dims).
    delta_actions: bool = opt(False, "predict joint actions relative to the current state")
    init_from: str | None = opt(
        None,
        "fine-tune from this checkpoint: a folder or a shipped policy's name (base, metaworld_mt10, ...)",
    )
    freeze_encoders: bool = opt(False, "with --init-from: train only the prefix transformer and the expert")
    model: VLAConfig = nested(VLAConfig, "model (the preset sets the rest of the architecture)")
    device: Literal["cpu", "cuda"] | None = opt(
        None, "where to train (default: a CUDA GPU when torch sees one, else the CPU)"
    )
    cache_dir: str | None = opt(None, "decoded-frame cache (default ~/.cache/embodia/frames)")
    # For a training machine without the encoder's weights or the registries.
    instruction_table: str | None = opt(
        None,
        "read instruction encodings from FILE (written by --save-instructions) instead of running the "
        "sentence encoder: trains on a machine without its weights or internet",
        flag="instructions",
        metavar="FILE",
    )
    # Each batch is a pure function of (seed, step, rank), so this never changes what is trained.
    prefetch: int | None = opt(
        None,
        "batches built ahead in background threads (default: 3 on a GPU, 0 on the CPU)",
        parse=lambda t: int(non_negative(t)),
    )
    eval_every: int = opt(0, "evaluate closed-loop in simulation every N steps (0: never)", metavar="N")
    eval_episodes: int = opt(10, "with --eval-every: episodes per task", parse=positive_int)
    eval_suite: str = opt("", "with --eval-every: the suite (e.g. pick,push)")
    # The first BUDGET_CALIBRATION_STEPS steps measure the step rate, then `steps` is set to what fits and
    # the run continues exactly as one started with that many steps (schedule, checkpoints, resume).
    minutes: float = opt(
        0.0,
        "train for this long in all (data loading included), replacing --steps: the step rate is "
        "measured on the first steps and the step count (and the schedule) set to what fits",
        parse=positive_float,
    )
    stop_after: int = opt(0, "testing aid: stop as if killed after this step", cli=False)
    name: str = opt("vla", "the run's name (its folder's suffix)")
    # Task families of the user's (embodia.tasks): `embodia train` loads them so that --paraphrase knows
    # their phrasings; checkpoints record them by path and sha256.
    task_files: list[str] = task_files()

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = VLAConfig.from_dict(self.model)
        if isinstance(self.language, dict):
            self.language = LanguageAugConfig(**self.language)
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.minutes < 0:
            raise ValueError(f"minutes must be >= 0 (0: no time budget), got {self.minutes}")
        if self.prefetch is not None and self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0 (batches built ahead), got {self.prefetch}")
        if self.dataset_weights is not None:
            if len(self.dataset_weights) != len(self.datasets):
                raise ValueError(
                    f"dataset_weights has {len(self.dataset_weights)} entries for {len(self.datasets)} "
                    "datasets; give one weight per dataset, in the same order"
                )
            if any(not w > 0 for w in self.dataset_weights):
                raise ValueError(f"dataset_weights must all be positive, got {self.dataset_weights}")
        if self.distill is not None:
            if len(self.distill) != len(self.datasets):
                raise ValueError(
                    f"distill has {len(self.distill)} entries for {len(self.datasets)} datasets; give one "
                    "weight per dataset, in the same order"
                )
            if any(not 0 <= w <= 1 for w in self.distill):
                raise ValueError(f"distill weights are between 0 and 1, got {self.distill}")
        # freeze_encoders (and distill) without init_from is refused when training starts (Trainer): a recipe's or
        # `embodia teach`'s config gets its init_from from the stage that runs it.

    @property
    def warmup(self) -> int:
        return min(self.warmup_steps, self.steps // 5)

    @property
    def time_budget_s(self) -> float:
        return 60.0 * self.minutes

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From a `train_config.json` (or a checkpoint's train state); files written before the language
        settings had their own group (flat keys, `time_budget_s`) are read too."""
        d = dict(d)
        flat = {k: d.pop(k) for k in [f.name for f in fields(LanguageAugConfig)] if k in d}
        if flat:
            d["language"] = {**d.get("language", {}), **flat}
        if "time_budget_s" in d:
            d["minutes"] = d.pop("time_budget_s") / 60.0
        return from_dict(cls, d)


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warmup, then a cosine that reaches lr * min_lr_ratio exactly at the last step (at
    `decay_steps` if set): the schedule is scaled to the requested number of steps (a schedule built
    for a different length is a classic way to train with a near-zero learning rate for most of a run)."""
    import math

    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    span = max(1, (cfg.decay_steps or cfg.steps) - cfg.warmup)
    progress = min(1.0, (step - cfg.warmup) / span)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


# Presets. "tiny" is for tests (seconds); "base" is the shipped pretrained base's recipe.
TINY_MODEL = VLAConfig(
    image_size=32,
    chunk_size=8,
    n_action_steps=4,
    d_model=32,
    n_heads=2,
    prefix_layers=1,
    expert_layers=1,
    cnn_channels=(8, 16),
    flow_steps=3,
)
# Sized by measurement on the 2-core CPU (benchmarks/inference_latency.py, a training-step timing):
# 1.6 M parameters, 0.51 s per batch-32 step on one idle core with the 16 keypoint tokens (0.45 s
# without them), so the base recipe's 10 k steps take ~86 minutes on one core. flow_steps and
# n_action_steps only matter when acting; they are the shipped base's (3 Euler steps, 16 actions per
# chunk), chosen after training by closed-loop evaluation (see policy/base/README.md).
BASE_MODEL = VLAConfig(
    image_size=96,
    chunk_size=16,
    n_action_steps=16,
    d_model=128,
    n_heads=4,
    prefix_layers=2,
    expert_layers=3,
    cnn_channels=(16, 32, 64, 128),
    flow_steps=3,
    keypoints=16,
)

# Delta joint actions and a smaller shift (4 % of the side) won 2 k-step experiments against absolute
# targets / 8 % shift (5 % vs 1 % closed-loop success); keypoint tokens were added for precision.
BASE = TrainConfig(
    steps=10_000,
    batch_size=32,
    lr=5e-4,
    warmup_steps=500,
    save_every=1000,
    ema_decay=0.999,
    delta_actions=True,
    aug_shift=0.04,
    model=BASE_MODEL,
    name="base",
)


@dataclass(frozen=True)
class Preset:
    """A named training config and what it costs (`embodia train --help` lists them)."""

    config: TrainConfig
    about: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        TrainConfig(steps=20, batch_size=8, save_every=10, log_every=5, warmup_steps=2, model=TINY_MODEL),
        "0.07 M parameters, 20 steps: seconds on a CPU (tests, smoke runs)",
    ),
    "default": Preset(TrainConfig(), "4.8 M parameters, 2 k steps at batch 32: ~14 min on a 2-core CPU (80 samples/s)"),
    "base": Preset(BASE, "the base's architecture (1.6 M parameters) from scratch, 10 k steps at batch 32: "
                   "~86 min on one CPU core"),
    # 16x the batch, a higher learning rate, and 9,140 steps (what fitted 9 minutes on one H200 at ~9.4 k
    # samples/s; 8x the samples of the CPU recipe): the first stage of the shipped base's recipe.
    "base_gpu": Preset(replace(BASE, steps=9140, batch_size=512, lr=1.5e-3, name="base_gpu"),
                       "1.6 M parameters, 9,140 steps at batch 512: 9 min on one H200 GPU"),
    # Meta-World MT10 with the base architecture (one camera, 80 fps end-effector deltas).
    "metaworld": Preset(
        TrainConfig(steps=6000, batch_size=32, lr=5e-4, warmup_steps=300, save_every=500, model=BASE_MODEL,
                    name="mt10"),
        "1.6 M parameters, 6 k steps at batch 32 on Meta-World: ~50 min on one CPU core",
    ),
    # The shipped policy/metaworld_mt10 was trained this way (84.0 % on MT10 vs 49 % for 9 k CPU steps).
    "metaworld_gpu": Preset(
        TrainConfig(steps=13_000, batch_size=512, lr=1.5e-3, warmup_steps=500, save_every=1000,
                    model=BASE_MODEL, name="mt10"),
        "1.6 M parameters, 13 k steps at batch 512 on Meta-World: ~12 min on one H200 GPU",
    ),
    # Few-shot fine-tuning of a checkpoint (give --init-from).
    "finetune": Preset(
        TrainConfig(steps=1000, batch_size=32, lr=3e-4, warmup_steps=100, save_every=500, aug_shift=0.04,
                    name="finetune"),
        "fine-tune a checkpoint (--init-from), 1 k steps at batch 32: ~9 min on one CPU core at the base's size",
    ),
}  # fmt: skip


def preset(name: str, **overrides) -> TrainConfig:
    """A copy of preset `name` with `overrides` (TrainConfig fields) applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return replace(PRESETS[name].config, **overrides)
