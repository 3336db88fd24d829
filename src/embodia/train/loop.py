"""The one training path, top to bottom: datasets -> batches -> flow-matching loss -> AdamW -> EMA ->
atomic checkpoints. Runs unchanged on one CPU or under `accelerate launch` (several processes/GPUs).

Determinism, and with it exact resume: every random draw of a step (which dataset, which frames, the
augmentation, the flow noise and time) comes from a generator seeded by (seed, step, process). A run
resumed from the checkpoint of step k therefore sees exactly the batches it would have seen, and with
the weights, EMA and AdamW moments restored bit for bit, it ends bit for bit where an uninterrupted run
ends (tested on CPU).
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from embodia.data.loader import TrainingDataset, augment_batch
from embodia.data.reader import LeRobotDataset
from embodia.policy.checkpoint import (
    CheckpointError,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_json,
    read_tensors,
)
from embodia.policy.inputs import (
    EmbodimentInfo,
    LanguageTable,
    action_targets,
    delta_dims_for,
    model_inputs,
)
from embodia.policy.language import InstructionEncoder, InstructionTable, save_instruction_table
from embodia.policy.model import VLA, VLAConfig
from embodia.policy.normalize import Normalizer
from embodia.policy.policy import Policy
from embodia.robots.spec import ACTION, OBS_STATE
from embodia.runs import git_sha
from embodia.sim.tasks import paraphrases
from embodia.train.config import TrainConfig, lr_at


@dataclass
class Source:
    """One dataset, the embodiment it trains, and its instructions already encoded."""

    data: TrainingDataset
    info: EmbodimentInfo
    language: LanguageTable
    # Other phrasings of each instruction (TrainConfig.paraphrase), all encoded in `language` too.
    alternatives: dict[str, list[str]] = field(default_factory=dict)


def embodiment_of(robot_type: str | None, state_dim: int, action_dim: int) -> str:
    """The embodiment name a dataset trains: its robot_type, qualified by its action size when the
    same robot appears with different action spaces (SO-101 joints vs end-effector deltas)."""
    name = (robot_type or "unknown").lower()
    if name.startswith("so101"):  # LeRobot writes "so101_follower"
        return "so101_ee" if action_dim == 4 else "so101"
    return name


def build_sources(
    cfg: TrainConfig, model_cfg: VLAConfig, encoder, known: dict[str, EmbodimentInfo] | None = None
) -> tuple[list[Source], dict[str, EmbodimentInfo]]:
    """Open the datasets; reuse the checkpoint's normalisation for embodiments it already knows (so a
    fine-tuned policy keeps the action scale it was pretrained with), compute it for new ones."""
    if not cfg.datasets:
        raise ValueError("no datasets to train on: pass at least one LeRobotDataset folder")
    embodiments = dict(known or {})
    sources = []
    for root in cfg.datasets:
        data = TrainingDataset(root, chunk_size=model_cfg.chunk_size, cache_dir=cfg.cache_dir)
        ds = data.ds
        for key in (OBS_STATE, ACTION):
            if key not in ds.features:
                raise ValueError(f"{root}: dataset has no {key!r} feature; the VLA needs state and action")
        state_dim = int(np.prod(ds.features[OBS_STATE]["shape"]))
        action_dim = int(np.prod(ds.features[ACTION]["shape"]))
        if state_dim > model_cfg.max_state_dim or action_dim > model_cfg.max_action_dim:
            raise ValueError(
                f"{root}: state {state_dim} / action {action_dim} dims exceed the model's "
                f"max_state_dim {model_cfg.max_state_dim} / max_action_dim {model_cfg.max_action_dim}"
            )
        if len(ds.camera_keys) > model_cfg.max_cameras:
            raise ValueError(
                f"{root}: {len(ds.camera_keys)} cameras; the model takes {model_cfg.max_cameras}"
            )
        name = embodiment_of(ds.robot_type, state_dim, action_dim)
        if name in embodiments:
            info = embodiments[name]
            if (info.state_dim, info.action_dim) != (state_dim, action_dim):
                raise ValueError(
                    f"{root}: embodiment {name!r} has state/action dims ({state_dim}, {action_dim}) here "
                    f"but ({info.state_dim}, {info.action_dim}) in the checkpoint"
                )
            if len(info.cameras) != len(ds.camera_keys):
                raise ValueError(
                    f"{root}: cameras {ds.camera_keys} do not match the checkpoint's {info.cameras}"
                )
            # The dataset's own camera names fill the checkpoint's slots in order.
            info.cameras = list(ds.camera_keys)
        else:
            if name not in model_cfg.embodiments:
                if len(model_cfg.embodiments) >= model_cfg.num_embodiments:
                    raise ValueError(
                        f"no free embodiment slot for {name!r} (model has {model_cfg.embodiments})"
                    )
                model_cfg.embodiments.append(name)
            feats = ds.features
            state_names, action_names = _names(feats[OBS_STATE]), _names(feats[ACTION])
            delta = delta_dims_for(state_names, action_names) if cfg.delta_actions else []
            # The action range is measured on the targets the model will see, never taken from
            # meta/stats.json: there q01/q99 are count-weighted means of per-episode quantiles (LeRobot's
            # approximation), which for a bimodal dimension such as a gripper that is open in some
            # episodes and closed in others can be far inside the data. Meta-World's gripper (+-1) got
            # q01/q99 = 0.27/0.61, so its targets were normalised to -8.6 and +3.6. With delta actions the
            # range must also describe actions minus the state.
            # (Built from the measured range, so that the "never varies" warning judges what is used.)
            lo, hi = action_target_quantiles(data, delta, model_cfg.chunk_size)
            stats = {**ds.stats, ACTION: {**ds.stats.get(ACTION, {}), "q01": lo, "q99": hi}}
            normalizer = Normalizer.from_stats(stats)
            info = EmbodimentInfo(
                name=name,
                token=model_cfg.embodiments.index(name),
                state_dim=state_dim,
                action_dim=action_dim,
                cameras=list(ds.camera_keys),
                fps=float(ds.fps),
                normalizer=normalizer,
                state_names=state_names,
                action_names=action_names,
                image_shapes={k: list(feats[k]["shape"]) for k in ds.camera_keys},
                delta_dims=delta,
            )
            embodiments[name] = info
        alts = task_phrasings(cfg, ds.tasks)
        texts = list(ds.tasks) + [a for a_list in alts.values() for a in a_list]
        sources.append(Source(data, info, LanguageTable.build(encoder, texts), alts))
    return sources, embodiments


def task_phrasings(cfg: TrainConfig, tasks: list[str]) -> dict[str, list[str]]:
    """The other phrasings training swaps in for each task (none unless cfg.language.paraphrase > 0)."""
    if cfg.language.paraphrase <= 0:
        return {}
    return {t: a for t in tasks if (a := paraphrases(t, cfg.language.paraphrase_carriers))}


def write_instruction_table(cfg: TrainConfig, path: str | Path) -> tuple[Path, int]:
    """Encode every instruction a run of `cfg` would encode (its datasets' tasks and the phrasings its
    language flags swap in) into one file that `cfg.instruction_table` reads. Reads dataset metadata
    only, no frames."""
    texts: list[str] = []
    for root in cfg.datasets:
        tasks = list(LeRobotDataset.open(root).tasks)
        texts += tasks + [a for a_list in task_phrasings(cfg, tasks).values() for a in a_list]
    texts = list(dict.fromkeys(texts))
    return save_instruction_table(InstructionEncoder(), texts, path), len(texts)


def action_target_quantiles(
    data: TrainingDataset, dims: list[int], chunk: int
) -> tuple[np.ndarray, np.ndarray]:
    """Exact q01/q99 of every chunk target as the model sees it (chunks clamped at episode ends like
    the loader's): action at t + k minus the state at t for the delta `dims`, absolute for the others."""
    action, state = data.action.numpy().astype(np.float64), data.state.numpy().astype(np.float64)
    n = len(action)
    idx = np.minimum(np.arange(n)[:, None] + np.arange(chunk)[None, :], data.episode_end[:, None])
    targets = action[idx]  # (N, H, d)
    targets[..., dims] -= state[:, None, dims]
    flat = targets.reshape(-1, action.shape[1])
    return np.quantile(flat, 0.01, axis=0), np.quantile(flat, 0.99, axis=0)


def _names(feature: dict) -> list[str]:
    names = feature.get("names")
    if isinstance(names, dict):  # LeRobot sometimes nests them: {"motors": [...]}
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if isinstance(names, list) else []


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 131 + rank)


def draw_source(sources: list[Source], cfg: TrainConfig, g: torch.Generator) -> int:
    """One dataset per step (a batch never mixes embodiments), drawn in proportion to its number of
    frames, or to `cfg.dataset_weights` when set."""
    weights = cfg.dataset_weights or [len(s.data) for s in sources]
    return int(torch.multinomial(torch.tensor(weights, dtype=torch.float), 1, generator=g))


def swap_phrasings(
    texts: list[str], alternatives: dict[str, list[str]], p: float, g: torch.Generator
) -> list[str]:
    """Replace each instruction, with probability p, by one of its other phrasings (drawn from g, so a
    step's batch stays a pure function of the step)."""
    swap = (torch.rand(len(texts), generator=g) < p).tolist()
    pick = torch.randint(1 << 30, (len(texts),), generator=g).tolist()
    out = []
    for text, s, k in zip(texts, swap, pick, strict=True):
        alts = alternatives.get(text)
        out.append(alts[k % len(alts)] if s and alts else text)
    return out


def drop_words(mask: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """Hide each word token with probability p (TrainConfig.word_dropout). The first and last real tokens
    ([CLS] and [SEP]) always stay, so every instruction keeps at least those two."""
    real = mask.sum(1, keepdim=True)  # (B, 1) number of real tokens
    pos = torch.arange(mask.shape[1])[None, :]
    words = mask & (pos > 0) & (pos < real - 1)
    return mask & ~(words & (torch.rand(mask.shape, generator=g) < p))


def mix_sentences(pooled: torch.Tensor, toward: torch.Tensor, p: float, g: torch.Generator) -> torch.Tensor:
    """With probability p per sample, move the unit sentence vector a uniform fraction of the way to
    `toward` (another phrasing of the same task) and renormalise (TrainConfig.sentence_mix)."""
    frac = torch.rand(len(pooled), 1, generator=g) * (torch.rand(len(pooled), 1, generator=g) < p)
    return torch.nn.functional.normalize(pooled + frac * (toward - pooled), dim=-1)


def perturb_sentences(pooled: torch.Tensor, scale: float, g: torch.Generator) -> torch.Tensor:
    """Add `scale` times a random unit vector to each unit sentence vector and renormalise
    (TrainConfig.sentence_noise)."""
    direction = torch.nn.functional.normalize(torch.randn(pooled.shape, generator=g), dim=-1)
    return torch.nn.functional.normalize(pooled + scale * direction, dim=-1)


def make_batch(sources: list[Source], cfg: TrainConfig, step: int, rank: int, device) -> tuple[dict, ...]:
    """Every random draw of a step, from one generator seeded by (seed, step, rank)."""
    g = step_generator(cfg.seed, step, rank)
    src = sources[draw_source(sources, cfg, g)]
    idx = torch.randint(len(src.data), (cfg.batch_size,), generator=g).tolist()
    batch = src.data.__getitems__(idx)
    cams = src.info.cameras
    if cfg.augment and cams:
        batch = augment_batch(batch, cams, generator=g, max_shift=cfg.aug_shift)
    m = cfg.model
    texts = batch["task"]
    if cfg.language.paraphrase > 0 and src.alternatives:
        texts = swap_phrasings(texts, src.alternatives, cfg.language.paraphrase, g)
    tokens, token_mask, pooled = src.language.lookup(texts)
    if cfg.language.word_dropout > 0:
        token_mask = drop_words(token_mask, cfg.language.word_dropout, g)
    if cfg.language.sentence_mix > 0 and src.alternatives:
        _, _, toward = src.language.lookup(swap_phrasings(batch["task"], src.alternatives, 1.0, g))
        pooled = mix_sentences(pooled, toward, cfg.language.sentence_mix, g)
    if cfg.language.sentence_noise > 0:
        pooled = perturb_sentences(pooled, cfg.language.sentence_noise, g)
    inputs = model_inputs(
        src.info,
        [batch[c].to(device) for c in cams],
        batch[OBS_STATE].to(device),
        (tokens, token_mask, pooled),
        m.image_size,
        m.max_cameras,
        m.max_state_dim,
    )
    actions, mask = action_targets(
        src.info, batch[ACTION], batch["action_is_pad"], m.max_action_dim, state=batch[OBS_STATE]
    )
    noise = torch.randn(actions.shape, generator=g)
    # t ~ Beta(1.5, 1) by inverse CDF (F(x) = x^1.5), so the draw uses our generator; as in pi0 the
    # time is kept away from exactly 0.
    t = torch.rand(cfg.batch_size, generator=g).pow(1 / 1.5) * 0.999 + 0.001
    return inputs, actions.to(device), mask.to(device), noise.to(device), t.to(device)


class Prefetcher:
    """Builds the batches of the next `depth` steps in background threads while the current step runs.
    `make_batch` is a pure function of the step, so the batches are exactly those built inline."""

    def __init__(self, sources: list[Source], cfg: TrainConfig, rank: int, device, depth: int):
        self.args = (sources, cfg)
        self.rank, self.device, self.depth = rank, device, depth
        self.pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="batches") if depth else None
        self.ahead: dict[int, Future] = {}

    def batch(self, step: int) -> tuple:
        if self.pool is None:
            return make_batch(*self.args, step, self.rank, self.device)
        for s in range(step, step + self.depth + 1):
            if s not in self.ahead:
                self.ahead[s] = self.pool.submit(make_batch, *self.args, s, self.rank, self.device)
        return self.ahead.pop(step).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.ahead.clear()


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: Path, accelerator=None, console=None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.acc = accelerator or _accelerator(cfg.device)
        self.console = console
        if self.acc.device.type == "cuda":
            # TF32 matmuls and cuDNN autotuning: how the shipped base was trained on an H200 (the
            # model is small, so full fp32 mostly costs time); no effect on the CPU.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)  # the initial weights
        encoder = InstructionTable(cfg.instruction_table) if cfg.instruction_table else InstructionEncoder()
        init = Policy.from_pretrained(cfg.init_from, encoder=encoder) if cfg.init_from else None
        if init is not None:
            # The architecture comes from the checkpoint; fine-tuning keeps chunking and sizes.
            cfg.model = VLAConfig.from_dict(init.cfg.to_dict())
        self.sources, self.embodiments = build_sources(
            cfg, cfg.model, encoder, init.embodiments if init else None
        )
        self.encoder = encoder
        self.model = VLA(cfg.model)
        if init is not None:
            self.model.load_state_dict(init.model.state_dict())
        if cfg.freeze_encoders:
            for module in (self.model.vision, self.model.lang_proj):
                module.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
            betas=(0.9, 0.95),
        )
        self.step = 0
        self.commit = git_sha()  # the checkout that trained it, in the checkpoint's metadata
        self.wrapped, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        # After prepare(), so that the EMA lives on the training device with the weights it follows.
        self.ema = [p.detach().clone() for p in self.model.parameters()] if cfg.ema_decay > 0 else None
        depth = cfg.prefetch if cfg.prefetch is not None else (3 if self.acc.device.type == "cuda" else 0)
        self.batches = Prefetcher(self.sources, cfg, self.acc.process_index, self.acc.device, depth)

    # ------------------------------------------------------------------ checkpoints
    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def policy(self, use_ema: bool = True) -> Policy:
        """The current model as a Policy (EMA weights by default), on the CPU."""
        model = VLA(VLAConfig.from_dict(self.cfg.model.to_dict()))
        model.load_state_dict(self.model.state_dict())
        if use_ema and self.ema is not None:
            with torch.no_grad():
                for p, e in zip(model.parameters(), self.ema, strict=True):
                    p.copy_(e)
        meta = {
            "datasets": [str(d) for d in self.cfg.datasets],
            "train_step": self.step,
            "preset": self.cfg.name,
            "commit": self.commit,
        }
        default = self.sources[0].info.name
        return Policy(model, self.embodiments, default, meta, encoder=self.encoder)

    def save(self) -> Path:
        """Policy files (EMA weights) plus the training state, atomically; keeps the last few."""
        opt_tensors, opt_meta = optimizer_to_tensors(self.optimizer)
        state = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        state.update(opt_tensors)
        if self.ema is not None:
            state.update({f"ema.{i}": e for i, e in enumerate(self.ema)})
        extra = {
            "train_state.safetensors": state,
            "train_state.json": {"step": self.step, "config": self.cfg.to_dict(), "optimizer": opt_meta},
        }
        path = self.policy().save_pretrained(self.ckpt_root / f"step-{self.step:07d}", extra_files=extra)
        from embodia.runs import atomic_write_text

        atomic_write_text(self.ckpt_root / "latest", path.name + "\n")
        old = sorted(p for p in self.ckpt_root.glob("step-*") if p.is_dir())[: -self.cfg.keep_checkpoints]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
        return path

    def load(self, ckpt: Path) -> None:
        meta = read_json(ckpt / "train_state.json")
        tensors = read_tensors(ckpt / "train_state.safetensors")
        weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(weights)
        optimizer_from_tensors(self.optimizer, tensors, meta["optimizer"])
        if self.ema is not None:
            self.ema = [tensors[f"ema.{i}"].to(e.device, copy=True) for i, e in enumerate(self.ema)]
        self.step = int(meta["step"])

    # ------------------------------------------------------------------ the loop
    def train_step(self) -> tuple[float, float]:
        cfg = self.cfg
        lr = lr_at(cfg, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        inputs, actions, mask, noise, t = self.batches.batch(self.step)
        self.wrapped.train()
        loss = self.wrapped(inputs, actions, mask, noise=noise, t=t)
        self.optimizer.zero_grad(set_to_none=True)
        self.acc.backward(loss)
        grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            # Warm the EMA up so that early checkpoints are not dominated by the random init.
            decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
            with torch.no_grad():
                params = [p.detach() for p in self.model.parameters()]
                torch._foreach_lerp_(self.ema, params, 1 - decay)
        self.step += 1
        return float(loss.detach()), float(grad_norm)


def latest_checkpoint(run_dir: Path) -> Path | None:
    marker = Path(run_dir) / "checkpoints" / "latest"
    if not marker.exists():
        return None
    path = marker.parent / marker.read_text().strip()
    if not (path / "train_state.json").exists():
        raise CheckpointError(f"{marker} points to {path}, which is not a complete training checkpoint")
    return path


BUDGET_CALIBRATION_STEPS = 20
# Steps left out of the first rate measurement: the first step carries one-off costs (CUDA context,
# cuDNN autotuning, the batch threads starting). On an H100 the first 10 steps took 7 s and the rest
# ran at 21 steps/s; measured from step 0, a 9-minute MT50 run fitted 742 steps and used 43 s of GPU.
BUDGET_WARM_STEPS = 3
UNFITTED_STEPS = 10**9
# Part of a time budget kept for the final checkpoint and the gaps the calibration does not see.
BUDGET_RESERVE = 0.04


def fit_steps_to_budget(cfg: TrainConfig, step: int, step_rate: float, elapsed_s: float) -> int:
    """How many steps in total fit `cfg.time_budget_s`, given the measured rate (steps/s) and the time
    already spent (data loading and the calibration steps included); never fewer than `step`."""
    left = cfg.time_budget_s * (1 - BUDGET_RESERVE) - elapsed_s
    return step + max(0, int(step_rate * left))


class StepBudget:
    """Decides the step count of a run with a time budget, at two steps known in advance to every
    process: after BUDGET_WARM_STEPS + BUDGET_CALIBRATION_STEPS steps, then once more when the warmup
    ends, with the rate measured since. The first steps run slower (allocator, a cold page cache: 0.84
    against 0.56 s/step in a 10-minute fine-tune), so the first fit alone ends runs early. The first fit
    also fixes the warmup's length (`cfg.warmup_steps`), so the second may change the step count freely
    as long as the warmup it implies is unchanged: the cosine has not started, so the schedule never
    jumps."""

    def __init__(self, cfg: TrainConfig, t_start: float, step: int, now: float):
        self.cfg, self.t_start = cfg, t_start
        self.mark = (step, now)  # where the current rate measurement began
        self.warm_at = step + BUDGET_WARM_STEPS
        self.calibrate_at = self.warm_at + BUDGET_CALIBRATION_STEPS
        self.refit_at: int | None = None

    def candidate(self, step: int, now: float) -> int | None:
        """At a decision step: the total step count this process would choose (-1: keep the current
        one); None at every other step."""
        if step == self.warm_at:
            self.mark = (step, now)  # the one-off costs are behind; measure from here
            return None
        if step not in (self.calibrate_at, self.refit_at):
            return None
        rate = (step - self.mark[0]) / max(now - self.mark[1], 1e-9)
        steps = fit_steps_to_budget(self.cfg, step, rate, now - self.t_start)
        self.mark = (step, now)
        if step == self.refit_at and min(self.cfg.warmup_steps, steps // 5) != step:
            return -1  # fewer steps than the warmup fixed by the first fit allows
        return steps

    def decided(self, step: int, steps: int) -> None:
        """Record the agreed count; after the first fit, fix the warmup's length and plan the second fit
        at its end."""
        if step == self.calibrate_at:
            warmup_end = min(self.cfg.warmup_steps, steps // 5)
            enough = warmup_end >= step + BUDGET_CALIBRATION_STEPS  # steps to measure the rate on
            self.cfg.warmup_steps = warmup_end
            self.refit_at = warmup_end if enough else None
        else:
            self.refit_at = None


def _accelerator(device: str | None) -> Accelerator:
    """accelerate's choice of device (a GPU when there is one), or the one the config asks for."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA GPU here (use --device cpu)")
    return Accelerator(cpu=device == "cpu")


def train(cfg: TrainConfig, run_dir: Path, resume: bool = False, console=None, on_log=None) -> Path:
    """Train; returns the folder of the final policy (`<run>/final`). With `resume`, continue the run
    in `run_dir` from its latest checkpoint, with the configuration it was started with."""
    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise CheckpointError(f"{run_dir}: nothing to resume (no checkpoints/latest)")
        saved = read_json(ckpt / "train_state.json")["config"]
        cfg = TrainConfig.from_dict({**saved, "stop_after": cfg.stop_after})
    # A resumed run keeps the steps its budget fixed; only one stopped before that measures again.
    fitting = cfg.time_budget_s > 0 and (not resume or cfg.steps == UNFITTED_STEPS)
    if fitting:
        cfg.steps = UNFITTED_STEPS  # until the rate is measured (the warmup is the configured one)
    trainer = Trainer(cfg, run_dir, console=console)
    acc = trainer.acc
    if resume:
        trainer.load(ckpt)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "metrics.jsonl"
    if acc.is_main_process and not resume:
        _write_config(run_dir, cfg)
    losses: list[float] = []
    t0, last_t, last_step = time.perf_counter(), time.perf_counter(), trainer.step
    progress = _progress(console) if acc.is_main_process and console is not None else None
    bar = (
        progress.add_task("train", total=cfg.steps, completed=trainer.step, loss=float("nan"), sps=0.0)
        if progress
        else None
    )
    try:
        if progress:
            progress.start()
        budget = StepBudget(cfg, t_start, trainer.step, time.perf_counter()) if fitting else None
        while trainer.step < cfg.steps:
            loss, grad_norm = trainer.train_step()
            losses.append(loss)
            step = trainer.step
            candidate = budget.candidate(step, time.perf_counter()) if budget else None
            if candidate is not None:
                agreed = _agree(acc, candidate)
                if agreed >= 0:
                    cfg.steps = agreed
                budget.decided(step, cfg.steps)
                if acc.is_main_process:
                    _write_config(run_dir, cfg)
                    if console is not None:
                        console.print(
                            f"time budget {cfg.time_budget_s:.0f} s: step {step}, training {cfg.steps} steps"
                        )
                if progress:
                    progress.update(bar, total=cfg.steps)
            if budget and step > budget.calibrate_at and step % cfg.log_every == 0 and step < cfg.steps:
                # The fitted count rests on a rate that can still drop (another job starts): past the
                # budget, stop here, all processes at the same step, and save as if this were the end.
                over = time.perf_counter() - t_start > cfg.time_budget_s * (1 - BUDGET_RESERVE / 2)
                if _agree(acc, int(over)):
                    cfg.steps = step
                    if acc.is_main_process:
                        _write_config(run_dir, cfg)
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                sps = (step - last_step) * cfg.batch_size * acc.num_processes / max(now - last_t, 1e-9)
                record = {
                    "step": step,
                    "loss": float(np.mean(losses)),
                    "lr": lr_at(cfg, step - 1),
                    "grad_norm": grad_norm,
                    "samples_per_s": round(sps, 1),
                    "elapsed_s": round(now - t0, 2),
                }
                losses, last_t, last_step = [], now, step
                if acc.is_main_process:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    if on_log:
                        on_log(record)
                if progress:
                    progress.update(bar, completed=step, loss=record["loss"], sps=sps)
            if step % cfg.save_every == 0 and step < cfg.steps:
                acc.wait_for_everyone()
                if acc.is_main_process:
                    trainer.save()
            if cfg.stop_after and step >= cfg.stop_after:
                return run_dir  # as if killed: no final save
    finally:
        trainer.batches.close()
        if progress:
            progress.stop()
    acc.wait_for_everyone()
    final = run_dir / "final"
    if acc.is_main_process:
        trainer.save()
        trainer.policy().save_pretrained(final)
    acc.wait_for_everyone()
    return final


def _write_config(run_dir: Path, cfg: TrainConfig) -> None:
    """The run's configuration as it stands (a time budget rewrites it once the step count is fixed)."""
    from embodia.runs import atomic_write_text

    atomic_write_text(run_dir / "train_config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")


def _agree(acc, steps: int) -> int:
    """Every process trains the main process's step count (their measured rates differ slightly)."""
    if acc.num_processes == 1:
        return steps
    from accelerate.utils import broadcast_object_list

    return int(broadcast_object_list([steps])[0])


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[sps]:.0f} samples/s"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
