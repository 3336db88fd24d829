"""The one training path, top to bottom: datasets -> batches (`train.batches`, with the batch
transforms of `data.transforms`) -> flow-matching loss -> AdamW -> EMA -> atomic checkpoints. Runs
unchanged on one CPU or under `accelerate launch` (several processes/GPUs).

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
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from embodia.data.transforms import PhrasingSource
from embodia.policy.checkpoint import (
    CheckpointError,
    optimizer_from_tensors,
    optimizer_to_tensors,
    read_json,
    read_tensors,
)
from embodia.policy.language import InstructionEncoder, InstructionTable
from embodia.policy.model import VLA, VLAConfig
from embodia.policy.policy import Policy
from embodia.runs import git_sha
from embodia.train.batches import Prefetcher, build_sources
from embodia.train.config import TrainConfig, lr_at


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        accelerator=None,
        console=None,
        phrasings: PhrasingSource | None = None,
    ):
        if cfg.freeze_encoders and not cfg.init_from:
            raise ValueError("freeze_encoders needs init_from (a checkpoint whose encoders to keep)")
        if cfg.distill and any(cfg.distill) and not cfg.init_from:
            raise ValueError("distill needs init_from (the policy whose outputs to keep)")
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
            cfg, cfg.model, encoder, init.embodiments if init else None, phrasings, self.acc.device
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
        # The starting policy, frozen, whose outputs are the targets on the distilled datasets.
        self.teacher = _teacher(cfg, init, self.acc.device) if cfg.distill and any(cfg.distill) else None
        self.wrapped, self.optimizer = self.acc.prepare(self.model, self.optimizer)
        # After prepare(), so that the EMA lives on the training device with the weights it follows.
        self.ema = [p.detach().clone() for p in self.model.parameters()] if cfg.ema_decay > 0 else None
        depth = cfg.prefetch if cfg.prefetch is not None else (3 if self.acc.device.type == "cuda" else 0)
        self.batches = Prefetcher(self.sources, cfg, self.acc.process_index, depth)

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
            **({"task_files": [file_record(p) for p in self.cfg.task_files]} if self.cfg.task_files else {}),
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
        inputs, actions, mask, noise, t, source = self.batches.batch(self.step)
        target = None
        if self.teacher is not None and cfg.distill[source] > 0:
            w = cfg.distill[source]
            _, _, own = self.model.head_input(actions, mask, noise, t)
            target = w * self.teacher.head_output(inputs, actions, mask, noise, t) + (1 - w) * own
        self.wrapped.train()
        loss = self.wrapped(inputs, actions, mask, noise=noise, t=t, target=target)
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


def _teacher(cfg: TrainConfig, init: Policy, device) -> VLA:
    """A frozen copy of the starting policy in eval mode, with the (possibly extended) model config the
    student trains with."""
    teacher = VLA(cfg.model)
    teacher.load_state_dict(init.model.state_dict())
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


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


def train(
    cfg: TrainConfig,
    run_dir: Path,
    resume: bool = False,
    console=None,
    on_log=None,
    phrasings: PhrasingSource | None = None,
) -> Path:
    """Train; returns the folder of the final policy (`<run>/final`). With `resume`, continue the run
    in `run_dir` from its latest checkpoint, with the configuration it was started with. `phrasings`
    gives the other phrasings of an instruction that `cfg.language.paraphrase` swaps in (needed then)."""
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
    trainer = Trainer(cfg, run_dir, console=console, phrasings=phrasings)
    acc = trainer.acc
    if resume:
        trainer.load(ckpt)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "metrics.jsonl"
    if acc.is_main_process and not resume:
        _write_config(run_dir, cfg)
    if acc.is_main_process and resume:
        _truncate_metrics(log_path, trainer.step)  # steps logged after that checkpoint are trained again
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
            if budget and _follow_budget(budget, acc, cfg, run_dir, step, t_start, console) and progress:
                progress.update(bar, total=cfg.steps)
            if step % cfg.log_every == 0 or step == cfg.steps:
                now = time.perf_counter()
                sps = (step - last_step) * cfg.batch_size * acc.num_processes / max(now - last_t, 1e-9)
                record = {"step": step, "loss": float(np.mean(losses)), "lr": lr_at(cfg, step - 1),
                          "grad_norm": grad_norm, "samples_per_s": round(sps, 1),
                          "elapsed_s": round(now - t0, 2)}  # fmt: skip
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


def _follow_budget(
    budget: StepBudget, acc, cfg: TrainConfig, run_dir: Path, step: int, t_start: float, console
) -> bool:
    """A time budget's part of a step: at a decision step every process takes the agreed step count
    (then True, so that the progress bar follows); past the budget, the run ends at this step."""
    decided = False
    candidate = budget.candidate(step, time.perf_counter())
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
        decided = True
    if step > budget.calibrate_at and step % cfg.log_every == 0 and step < cfg.steps:
        # The fitted count rests on a rate that can still drop (another job starts): past the budget,
        # stop here, all processes at the same step, and save as if this were the end.
        over = time.perf_counter() - t_start > cfg.time_budget_s * (1 - BUDGET_RESERVE / 2)
        if _agree(acc, int(over)):
            cfg.steps = step
            if acc.is_main_process:
                _write_config(run_dir, cfg)
    return decided


def _truncate_metrics(log_path: Path, step: int) -> None:
    """Drop the metrics of steps after `step` (logged before the run stopped, past its last checkpoint)
    and any torn last line, so that a resumed run logs each step once."""
    if not log_path.exists():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if int(json.loads(line)["step"]) <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
    from embodia.runs import atomic_write_text

    atomic_write_text(log_path, "".join(f"{line}\n" for line in kept))


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


def file_record(path: str) -> dict:
    """A task file as checkpoint metadata keeps it: its path as given and its sha256."""
    import hashlib

    return {"path": str(path), "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
