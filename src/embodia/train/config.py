"""Typed training configuration and the named presets (`embodia train --preset base`).

A preset is just a `TrainConfig` with some fields set; command-line flags override it field by field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from embodia.policy.model import VLAConfig


@dataclass
class TrainConfig:
    datasets: list[str] = field(default_factory=list)
    # Relative sampling weight of each dataset (None: proportional to its number of frames). Co-training
    # a small new dataset with the base's data (e.g. [1, 1]) keeps the base's skills while it learns.
    dataset_weights: list[float] | None = None
    out: str | None = None  # run folder (default ./embodia_runs/train/<time>-<name>)
    steps: int = 2000
    batch_size: int = 32  # per process
    lr: float = 3e-4
    min_lr_ratio: float = 0.05  # the cosine ends at lr * min_lr_ratio, exactly at `steps`
    # Steps over which the cosine decays; None = `steps` (the schedule scales with the run). Setting it
    # shorter than `steps` reproduces the classic "LR hit its floor early" bug; the doctor flags it.
    decay_steps: int | None = None
    warmup_steps: int = 200  # capped at steps // 5 so that short runs still get their cosine
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.999  # 0 disables EMA
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    augment: bool = True
    aug_shift: float = 0.08  # random shift as a fraction of the image side (pad-and-crop)
    # Probability that a sample's instruction is swapped for another phrasing of the same task
    # (`sim.tasks.paraphrases`: the family's train and augment templates). With only four phrasings per
    # family the policy can key on exact strings; varied phrasings make it follow the task's meaning,
    # which is what held-out templates and free-text `embodia run` instructions need. Instructions that
    # are not tabletop templates are never swapped.
    paraphrase: float = 0.0
    # With paraphrase > 0: also swap in phrasings wrapped in carrier words ("please ...", "... for me";
    # `sim.tasks.CARRIER_PREFIXES`), 30 sentence contexts per phrasing.
    paraphrase_carriers: bool = False
    # Word dropout: each word token of an instruction (not [CLS]/[SEP]) is hidden from the policy with this
    # probability, so no single word carries the task alone; an unseen verb at test time is then one
    # uninformative word among others the policy has learnt to use. The pooled vector is kept whole.
    word_dropout: float = 0.0
    # The pooled sentence vector drives FiLM in the vision encoder, so an unfamiliar phrasing perturbs what
    # the policy *sees*, not only what it is told: on the shipped base, "hoist the red cube into the air"
    # with the pooled vector of "raise the red cube" (its own tokens kept) succeeds 24/25 times instead of
    # 19/25. These two make FiLM robust to where a phrasing's vector lands. sentence_mix (needs
    # paraphrase > 0): with this probability a sample's vector moves a uniform fraction of the way toward
    # another phrasing of the same task. sentence_noise: the vector plus this multiple of a random unit
    # vector, renormalised (cosine to the original ~ 1 / sqrt(1 + s^2)). Tokens are left as they are.
    sentence_mix: float = 0.0
    sentence_noise: float = 0.0
    # Predict joint actions relative to the current state (see EmbodimentInfo.delta_dims); only for
    # embodiments whose action and state name the same joints.
    delta_actions: bool = False
    init_from: str | None = None  # fine-tune from this checkpoint folder
    freeze_encoders: bool = False  # with init_from: train only the prefix transformer and the expert
    model: VLAConfig = field(default_factory=VLAConfig)
    cache_dir: str | None = None
    # Read instruction encodings from this file (`--save-instructions` writes it) instead of running the
    # sentence encoder: for a training machine without the encoder's weights or the registries.
    instruction_table: str | None = None
    # Batches built ahead in background threads (None: 3 on a GPU, where building them on the training
    # thread leaves the device idle, 0 on the CPU, where the threads would compete with the step itself).
    # Each batch is a pure function of (seed, step, rank), so this never changes what is trained.
    prefetch: int | None = None
    eval_every: int = 0  # 0: no periodic evaluation in simulation
    eval_episodes: int = 10
    eval_suite: str = ""
    # Wall-clock budget for the whole run in seconds (0: off; `embodia train --minutes`). The first
    # BUDGET_CALIBRATION_STEPS steps measure the step rate, then `steps` is set to what fits and the run
    # continues exactly as one started with that many steps (schedule, checkpoints, resume).
    time_budget_s: float = 0.0
    stop_after: int = 0  # testing aid: stop (as if killed) after this step, without a final save
    name: str = "vla"

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = VLAConfig.from_dict(self.model)
        for name in ("steps", "batch_size", "save_every", "log_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
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
            raise ValueError(f"sentence_noise is a scale in [0, 4] (1: cosine ~0.7), got {self.sentence_noise}")
        if self.time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0 (0: no budget), got {self.time_budget_s}")
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
        if self.freeze_encoders and not self.init_from:
            raise ValueError("freeze_encoders needs init_from (a checkpoint whose encoders to keep)")

    @property
    def warmup(self) -> int:
        return min(self.warmup_steps, self.steps // 5)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


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
# without them), so the base recipe's 10 k steps take ~86 minutes on one core.
BASE_MODEL = VLAConfig(
    image_size=96,
    chunk_size=16,
    n_action_steps=8,
    d_model=128,
    n_heads=4,
    prefix_layers=2,
    expert_layers=3,
    cnn_channels=(16, 32, 64, 128),
    flow_steps=5,
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

PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(steps=20, batch_size=8, save_every=10, log_every=5, warmup_steps=2, model=TINY_MODEL),
    "default": TrainConfig(),
    "base": BASE,
    # The same model and data on a GPU: 16x the batch, a higher learning rate, and 9,140 steps (what fitted
    # 9 minutes on one H200 at ~9.4 k samples/s; 8x the samples of the CPU recipe). The shipped base is its
    # checkpoint: 39.0 % seen / 38.5 % held-out templates as trained vs 31.0 / 20.5 % for 19 k CPU steps.
    "base_gpu": replace(BASE, steps=9140, batch_size=512, lr=1.5e-3, name="base_gpu"),
    # Meta-World MT10 with the base architecture (one camera, 80 fps end-effector deltas).
    "metaworld": TrainConfig(
        steps=6000, batch_size=32, lr=5e-4, warmup_steps=300, save_every=500, model=BASE_MODEL, name="mt10"
    ),
    # MT10 on a GPU: the shipped policy/metaworld_mt10 was trained this way (13 k steps at batch 512 on one
    # H200, 84.0 % on MT10 vs 49 % for the 9 k CPU steps at batch 32 above).
    "metaworld_gpu": TrainConfig(
        steps=13_000,
        batch_size=512,
        lr=1.5e-3,
        warmup_steps=500,
        save_every=1000,
        model=BASE_MODEL,
        name="mt10",
    ),
    # Few-shot fine-tuning: 1 k steps, ~9 minutes on one core of the 2-core CPU at the base's size.
    "finetune": TrainConfig(
        steps=1000, batch_size=32, lr=3e-4, warmup_steps=100, save_every=500, aug_shift=0.04, name="finetune"
    ),
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)
