"""Commands about training: `train` and `doctor train`."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from embodia.commands.common import CHECKPOINT_HELP, console
from embodia.configs import nested, opt, positive_int
from embodia.recipes.teach import TeachConfig
from embodia.train.config import PRESETS, TrainConfig, preset


def presets_help() -> str:
    lines = [f"  {name:<14} {p.about}" for name, p in PRESETS.items()]
    return "presets (--preset; flags override the preset field by field):\n" + "\n".join(lines)


@dataclass(frozen=True)
class TrainOptions:
    train: TrainConfig = nested(TrainConfig, "training")
    preset: str = opt("default", "named starting config (listed above)", choices=tuple(PRESETS))
    config: str | None = opt(
        None,
        "start from a run's train_config.json instead of a preset (re-runs it; flags override it)",
        metavar="FILE",
    )
    resume: str | None = opt(None, "continue this run from its latest checkpoint", metavar="RUN_DIR")
    save_instructions: str | None = opt(
        None,
        "write the sentence encoder's output for every instruction this run would use (tasks and the "
        "phrasings the language options add) to FILE and stop, without training: for --instructions",
        metavar="FILE",
    )
    no_preflight: bool = opt(False, "skip the training doctor's static checks")
    allow_preflight_fail: bool = opt(
        False, "train even when the training doctor's static checks find a FAIL (printed all the same)"
    )


def base_config(given: dict[str, Any]) -> TrainConfig:
    """What the training flags apply to: a preset, or a saved run's config (--config). Mutates `given`:
    with --backbone, keypoints are turned off (they read the built-in CNN's middle block)."""
    if "train.model.backbone" in given:
        given["train.model.keypoints"] = 0
    if given.get("config"):
        if "preset" in given:
            raise ValueError(
                "give --config or --preset, not both: a saved config already holds a preset's values"
            )
        return config_from_run(given["config"])
    return preset(given.get("preset", "default"))


def config_from_run(path: str | Path) -> TrainConfig:
    """A run's `train_config.json`, ready to run again: in a new folder, and with the step count its
    time budget fixed (a budget measured again on another machine would train another run)."""
    from embodia.train.loop import UNFITTED_STEPS

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (give a run's train_config.json)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    cfg = TrainConfig.from_dict(data)
    fitted = cfg.minutes > 0 and cfg.steps != UNFITTED_STEPS
    return dataclasses.replace(cfg, out=None, stop_after=0, minutes=0.0 if fitted else cfg.minutes)


def cmd_train(o: TrainOptions) -> int:
    """Train the VLA on LeRobotDatasets (from scratch, or fine-tuning a checkpoint with --init-from).
    Exit status 1, before any run folder exists, when the preflight finds a FAIL (override:
    --allow-preflight-fail)."""
    from embodia.runs import new_run_dir, write_manifest
    from embodia.sim.tasks import paraphrases  # the phrasings --paraphrase swaps in: the tabletop's
    from embodia.train.loop import train

    main_process = int(os.environ.get("RANK", "0")) == 0
    cfg = o.train
    if o.resume:
        if o.save_instructions:
            raise ValueError(
                "--save-instructions encodes a new run's instructions: give its datasets, not --resume"
            )
        run_dir = Path(o.resume)
    else:
        if not cfg.datasets:
            raise ValueError("give at least one dataset folder (or --resume RUN_DIR, or --config FILE)")
        cfg = dataclasses.replace(cfg, datasets=[str(Path(d)) for d in cfg.datasets])
        if cfg.model.backbone != "cnn":
            from embodia.policy.backbones import check_backbone

            check_backbone(cfg.model.backbone)  # before the run folder exists
        if o.save_instructions:
            from embodia.train.batches import write_instruction_table

            path, n = write_instruction_table(cfg, o.save_instructions, phrasings=paraphrases)
            console.print(
                f"{n} instructions encoded: [bold]{path}[/] (train elsewhere with --instructions {path})"
            )
            return 0
        # Under `accelerate launch` every process runs this; they must agree on one folder.
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not cfg.out:
            raise ValueError("with several processes (accelerate launch), give the run folder with --out")
        check_inputs(cfg)  # a missing dataset or checkpoint fails here, before the run folder exists
        # Every process runs the (deterministic) checks, so that all of them stop or none does.
        if not o.no_preflight and not run_preflight(cfg, o.allow_preflight_fail, show=main_process):
            return 1
        run_dir = Path(cfg.out) if cfg.out else new_run_dir("train", cfg.name)
        if main_process:
            write_manifest(run_dir, "train", cfg.to_dict(), seeds=[cfg.seed])
    if main_process:
        console.print(f"training run: [bold]{run_dir}[/]")
    t0 = time.perf_counter()
    try:
        final = train(cfg, run_dir, resume=bool(o.resume), console=console, phrasings=paraphrases)
    except BaseException:
        if main_process and not o.resume:
            _remove_if_unstarted(run_dir)
        raise
    if main_process:
        console.print(
            f"done in {time.perf_counter() - t0:.0f} s; policy: [bold]{final}[/], "
            f"metrics: {run_dir / 'metrics.jsonl'}, checkpoints: {run_dir / 'checkpoints'}"
        )
    return 0


def check_inputs(cfg: TrainConfig) -> None:
    """Open every dataset's metadata and check the checkpoint folder (cheap): bad inputs raise a
    ValueError that names them."""
    from embodia.data.reader import LeRobotDataset

    for root in cfg.datasets:
        LeRobotDataset.open(root)
    if cfg.init_from:
        from embodia.policy.checkpoint import check_policy_folder, resolve_policy

        check_policy_folder(resolve_policy(cfg.init_from))


def _remove_if_unstarted(run_dir: Path) -> None:
    """A start that failed before training wrote anything leaves no run folder behind (only this
    command's manifest.json in it; a user's existing folder with other files is left alone)."""
    import shutil

    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"manifest.json"}:
        shutil.rmtree(run_dir, ignore_errors=True)


def run_preflight(cfg: TrainConfig, allow_fail: bool = False, show: bool = True) -> bool:
    """The training doctor's static checks, before any compute is spent (skip: --no-preflight).
    Prints the findings (with `show`); False when one FAILs and `allow_fail` is not set."""
    from embodia.policy.policy import Policy
    from embodia.train.doctor import preflight, severity_rank

    checkpoint = Policy.from_pretrained(cfg.init_from) if cfg.init_from else None
    findings = sorted(preflight(cfg, checkpoint=checkpoint), key=severity_rank)
    fails = sum(f.severity == "FAIL" for f in findings)
    if show:
        print_findings(findings)
        if fails and allow_fail:
            console.print(f"[yellow]training despite {fails} preflight FAIL(s)[/] (--allow-preflight-fail)")
        elif fails:
            console.print(
                f"[bold red]not training[/]: {fails} preflight FAIL(s). Fix them, check the setup with "
                "`embodia doctor train`, or pass --allow-preflight-fail to train anyway (--no-preflight "
                "skips the checks)"
            )
    return allow_fail or not fails


def print_findings(findings: list) -> None:
    """Every FAIL, and the first five findings whatever their severity (sorted: FAILs first)."""
    if not findings:
        console.print("preflight: [green]no findings[/]")
        return
    shown = [f for i, f in enumerate(findings) if f.severity == "FAIL" or i < 5]
    for f in shown:
        color = "red" if f.severity == "FAIL" else "yellow"
        console.print(
            f"preflight [{color}]{f.severity}[/] {f.check}: {f.message}" + (f" -> {f.fix}" if f.fix else "")
        )
    if len(findings) > len(shown):
        console.print(f"... and {len(findings) - len(shown)} more: embodia doctor train")


# ------------------------------------------------------------------------------ embodia doctor train
@dataclass(frozen=True)
class DoctorTrainOptions:
    train: TrainConfig = nested(TrainConfig, "the training setup to check", exclude=("out",))
    preset: str = opt("default", "training preset whose configuration to check", choices=tuple(PRESETS))
    checkpoint: str | None = opt(
        None, f"a trained checkpoint, compared with the data and replayed open-loop ({CHECKPOINT_HELP})"
    )
    suite: str | None = opt(
        None, "with --checkpoint: also evaluate closed-loop on this suite (e.g. pick,push)"
    )
    episodes: int = opt(10, "closed-loop episodes per task", parse=positive_int)
    no_overfit: bool = opt(False, "skip the overfit probe (~1 minute)")
    out: str | None = opt(None, "report folder (default ./embodia_runs/doctor/<time>-train)")


def cmd_doctor_train(o: DoctorTrainOptions) -> int:
    """Check a training setup: preflight, overfit probe, open-loop replay, closed-loop gap. Exit status:
    0 with no FAIL finding, 1 with any."""
    from embodia.policy.loading import is_lerobot, load_policy
    from embodia.runs import new_run_dir, write_manifest
    from embodia.train.doctor import run_doctor

    if not o.train.datasets:
        raise ValueError("give the dataset(s) to train on")
    checkpoint = load_policy(o.checkpoint) if o.checkpoint else None
    cfg = dataclasses.replace(o.train, datasets=[str(Path(d)) for d in o.train.datasets])
    if checkpoint is not None and not is_lerobot(
        checkpoint
    ):  # judge the configuration the checkpoint was trained with
        cfg.model = dataclasses.replace(checkpoint.cfg, embodiments=list(checkpoint.cfg.embodiments))
    run_dir = Path(o.out) if o.out else new_run_dir("doctor", "train")
    write_manifest(run_dir, "doctor train", {"datasets": cfg.datasets, "checkpoint": o.checkpoint,
                                              "preset": o.preset, "suite": o.suite})  # fmt: skip
    doc = run_doctor(cfg, run_dir, checkpoint=checkpoint, overfit=not o.no_overfit, suite=o.suite,
                     eval_episodes=o.episodes, console=console)  # fmt: skip
    _print_doctor(doc)
    console.print(f"report: [bold]{run_dir / 'report.html'}[/]; JSON: {run_dir / 'doctor.json'}")
    return 1 if any(f["severity"] == "FAIL" for f in doc["findings"]) else 0


def _print_doctor(doc: dict) -> None:
    table = Table(title=f"embodia doctor train: {doc['summary']}")
    for col in ("severity", "check", "finding", "fix"):
        table.add_column(col, overflow="fold")
    for f in doc["findings"]:
        color = "red" if f["severity"] == "FAIL" else "yellow"
        table.add_row(f"[{color}]{f['severity']}[/]", f["check"], f["message"], f["fix"])
    console.print(table if doc["findings"] else "[green]no findings[/]")
    if doc["overfit_probe"]:
        p = doc["overfit_probe"]
        console.print(
            f"overfit probe: loss {p['first_loss']:.3f} -> {p['final_loss']:.3f} ({p['ratio']:.1f}x)"
        )
    if doc["open_loop"]:
        console.print(f"open-loop replay: mean |error| {doc['open_loop']['mae']:.3f} (normalised)")
    for line in doc["diagnosis"]:
        console.print(line)


def cmd_teach(o: TeachConfig) -> int:
    """Fine-tune on your demonstrations of a task, co-trained to keep the base's skills, and evaluate.

    The loop after `embodia teleop --sim --record DEMOS`: DEMOS (a LeRobotDataset of one task family)
    -> the shipped base fine-tuned on it for --minutes (default 10), co-trained with the base's own
    recovery data (recorded once into the run folder) -> success on the family's held-out phrasings,
    before and after, with Wilson 95-percent intervals -> report.json and report.md in the run folder.
    A rerun with the same --out skips every stage that is up to date (see embodia.recipes.teach)."""
    from embodia.recipes.teach import teach

    teach(o, console=console)
    return 0
