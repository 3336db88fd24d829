"""The teaching loop: your demonstrations of a task -> the base fine-tuned on them, co-trained to keep
its skills -> success on the task's held-out phrasings -> a report. `embodia teach` is its command line.

    embodia teleop --sim --tasks my_task.py --record demos      # demonstrate in the browser
    embodia teach demos --tasks my_task.py                      # <= 10 min of fine-tuning, then evaluate

It is a recipe built for the demonstrations at hand (`teach_recipe`), run by the recipe runner, so every
stage has its manifest, is skipped when up to date and resumes when interrupted:

    demos         Demos     the folder of demonstrations, read where it is (fingerprinted by content)
    co_stack      Record    pick/stack recovery data of the base's recipe (60 episodes) } co-training:
    co_push       Record    push/touch recovery data of the base's recipe (60 episodes) } --cotrain base
    finetune      Train     `TeachConfig.train` from the policy (`--init-from`, default the shipped base),
                            distilled toward that policy on the co-training data (`--distill`)
    eval_before   Evaluate  the policy before fine-tuning, same held-out episodes   (--compare-before)
    eval_heldout  Evaluate  the fine-tuned policy on the family's held-out phrasings
    own_before / own_after  the base's own families before and after                 (--own-episodes N)

The co-training recordings take about 4 minutes on a 2-core CPU the first time; a later run with the
same `--out` reuses them (as it reuses every stage that is up to date), and `--cotrain FOLDER,...`
co-trains with datasets you have instead. The report (`report.json`, `report.md` in the run folder)
holds each evaluation with its Wilson 95 % interval, and points to the stages' manifests.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from embodia.configs import non_negative_int, opt, positive_int, probability, task_files
from embodia.recipes.base import PUSH_E, SENTENCE, STACK_D
from embodia.recipes.stages import SHIPPED_NAMES, Demos, Evaluate, Recipe, Record, Train
from embodia.runs import RUNS_ROOT, atomic_write_text
from embodia.train.config import TrainConfig, preset

OWN_FAMILIES = "pick,push,stack,touch"  # the shipped base's own families
COTRAIN_EPISODES = 60
# The base recipe's last recovery recordings, the first 60 seeds of each, two envs.
CO_STACK = replace(STACK_D, episodes=COTRAIN_EPISODES, num_envs=2)
CO_PUSH = replace(PUSH_E, episodes=COTRAIN_EPISODES, num_envs=2)
# What the loop's fine-tune sets; the flags override it field by field.
_FROM_LOOP = ("datasets", "dataset_weights", "distill", "init_from", "out", "name", "task_files", "model",
              "delta_actions", "stop_after")  # fmt: skip


# The loop's learning rate and co-training share, chosen on validation seeds of the example drawer family
# (docs/results.md, section 11): lr 1e-4 instead of the finetune preset's 3e-4 kept the base's own families
# (-5 points instead of -15), and 70 % of each batch from the demonstrations learnt the task best.
# Distillation on the co-training data (the targets there are the starting policy's own outputs, not the
# recorded actions), chosen on the same validation seeds: the own families kept 58 of 60 instead of 54, and
# the drawer rose from 13 to 19 of 30.
TEACH_LR = 1e-4
TEACH_COTRAIN_SHARE = 0.3
TEACH_DISTILL = 1.0


def default_train() -> TrainConfig:
    """The loop's fine-tune: the `finetune` preset (batch 32, warmup 100, shift augmentation) at lr
    TEACH_LR, with a 10-minute budget and the shipped base's language augmentation (paraphrases of the
    family's train and augment phrasings, sentence mix and noise), so that held-out phrasings are
    understood."""
    return preset("finetune", minutes=10.0, lr=TEACH_LR, language=SENTENCE)


def teach_defaults(given: dict) -> TeachConfig:
    """What `embodia teach`'s flags apply to: the defaults, where `--steps` without `--minutes` replaces
    the 10-minute budget by that fixed step count (reproducible across machines)."""
    fixed = "train.steps" in given and "train.minutes" not in given
    return TeachConfig(train=replace(default_train(), minutes=0.0) if fixed else default_train())


@dataclass(frozen=True)
class TeachConfig:
    """What `embodia teach` runs; its options are these fields (the fine-tune's are TrainConfig's)."""

    demos: str = opt("", "a LeRobotDataset folder of demonstrations of one task family", positional=True)
    family: str | None = opt(None, "the family demonstrated (default: read from the demos' instructions)")
    init_from: str = opt("base", "the policy to fine-tune: a shipped policy", choices=SHIPPED_NAMES)
    cotrain: str = opt(
        "base",
        "co-training data, so that the new task is learnt without overwriting the policy's skills: 'base' "
        "(120 recovery episodes of the base's families, recorded once into the run folder, ~4 min), "
        "'none', or dataset folders, comma-separated",
    )
    cotrain_share: float = opt(
        TEACH_COTRAIN_SHARE, "the fraction of each batch drawn from the co-training data"
    )
    distill: float = opt(
        TEACH_DISTILL,
        "on the co-training data, how much of the target is the starting policy's own output instead of the "
        "recorded actions (1: keep what the policy does there, 0: fit the recordings)",
        parse=probability,
    )
    episodes: int = opt(50, "held-out evaluation episodes (seeds --eval-seed ...)", parse=positive_int)
    eval_seed: int = opt(0, "the held-out evaluation's first seed (keep it apart from the demos' seeds)")
    num_envs: int = opt(2, "evaluation environments in parallel (subprocesses)", parse=positive_int)
    compare_before: bool = opt(True, "also evaluate the policy before fine-tuning on the same episodes")
    own_episodes: int = opt(
        0,
        "also evaluate before and after on the base's own families, N episodes each",
        parse=non_negative_int,
    )
    videos: int = opt(2, "videos kept per evaluated family", parse=non_negative_int)
    out: str | None = opt(None, "run folder (default: embodia_runs/teach/<family>-<demos folder name>)")
    task_files: list[str] = task_files()
    train: TrainConfig = field(
        default_factory=default_train,
        metadata={"help": "the fine-tune (defaults: the finetune preset, 10 minutes, the base's language "
                  "augmentation; --steps N without --minutes trains exactly N steps instead)", "nested": True,
                  "cli": True, "exclude": _FROM_LOOP},
    )  # fmt: skip

    def __post_init__(self) -> None:
        if not 0 < self.cotrain_share < 1:
            raise ValueError(f"cotrain_share must be between 0 and 1, got {self.cotrain_share}")


def demo_families(demos: str | Path) -> dict[str, int]:
    """{family: episodes} of a dataset's instructions, by the task catalogue (task files loaded)."""
    from embodia.data.reader import LeRobotDataset
    from embodia.sim.tasks import parse_instruction

    ds = LeRobotDataset.open(demos)
    found: dict[str, int] = {}
    for ep in ds.episodes:
        for text in ep["tasks"]:
            try:
                fam = parse_instruction(text).family
            except ValueError:
                fam = f"(not a known instruction: {text!r})"
            found[fam] = found.get(fam, 0) + 1
    return found


def resolve_family(cfg: TeachConfig) -> str:
    """The family taught: `cfg.family`, or the one family the demos' instructions belong to (every
    family has held-out phrasings: embodia.tasks.TaskFamily requires them)."""
    from embodia.sim.tasks import FAMILIES

    family = cfg.family
    if family is None:
        found = demo_families(cfg.demos)
        known = sorted(f for f in found if f in FAMILIES)
        if len(known) != 1 or len(found) != 1:
            raise ValueError(
                f"{cfg.demos}: its instructions belong to {sorted(found)}; give the family taught with "
                "--family (and the file that defines it with --tasks)"
            )
        family = known[0]
    if family not in FAMILIES:
        raise ValueError(
            f"unknown family {family!r} (load the file that defines it with --tasks); known: {sorted(FAMILIES)}"
        )
    return family


def teach_recipe(cfg: TeachConfig, family: str) -> Recipe:
    """The loop for `cfg` as a recipe (see the module docstring)."""
    stages: list = [Demos("demos", str(cfg.demos))]
    data, weights = ["demos"], [1.0]
    if cfg.cotrain == "base":
        stages += [Record("co_stack", CO_STACK), Record("co_push", CO_PUSH)]
        data += ["co_stack", "co_push"]
    elif cfg.cotrain != "none":
        folders = [f for f in cfg.cotrain.split(",") if f]
        for i, folder in enumerate(folders):
            stages.append(Demos(f"cotrain_{i}", folder))
            data.append(f"cotrain_{i}")
    distill = None
    if len(data) > 1:
        share = cfg.cotrain_share / (len(data) - 1)
        weights = [1 - cfg.cotrain_share] + [share] * (len(data) - 1)
        distill = (0.0,) + (cfg.distill,) * (len(data) - 1) if cfg.distill > 0 else None
    train = replace(cfg.train, task_files=list(cfg.task_files), datasets=[], init_from=None)
    stages.append(Train("finetune", train, datasets=tuple(data), weights=tuple(weights), distill=distill,
                        init_from=cfg.init_from))  # fmt: skip
    files = tuple(cfg.task_files)

    def judge(name: str, policy: str, suite: str, split: str, episodes: int) -> Evaluate:
        return Evaluate(name, policy=policy, suite=suite, split=split, episodes=episodes,
                        num_envs=cfg.num_envs, seed=cfg.eval_seed, videos_per_task=cfg.videos,
                        task_files=files)  # fmt: skip

    if cfg.compare_before:
        stages.append(judge("eval_before", cfg.init_from, family, "heldout", cfg.episodes))
    stages.append(judge("eval_heldout", "finetune", family, "heldout", cfg.episodes))
    if cfg.own_episodes:
        stages.append(judge("own_before", cfg.init_from, OWN_FAMILIES, "train", cfg.own_episodes))
        stages.append(judge("own_after", "finetune", OWN_FAMILIES, "train", cfg.own_episodes))
    return Recipe(
        name="teach",
        about=f"{cfg.init_from} fine-tuned on demonstrations of {family!r}, evaluated on its held-out phrasings",
        stages=tuple(stages),
        artifact="finetune",
    )


def teach(cfg: TeachConfig, *, scale: str = "full", console=None) -> dict[str, Any]:
    """Run the loop; returns the report (also written to report.json and report.md in the run folder).
    Bad input (no such folder, not a dataset, an unknown family) fails before the run folder exists."""
    from embodia.recipes.fingerprint import dataset_fingerprint
    from embodia.recipes.runner import run_recipe

    if not cfg.demos:
        raise ValueError(
            "give the folder of demonstrations (a LeRobotDataset, e.g. from embodia teleop --record)"
        )
    for folder in [cfg.demos, *([] if cfg.cotrain in ("base", "none") else cfg.cotrain.split(","))]:
        if folder:
            try:
                dataset_fingerprint(Path(folder))
            except FileNotFoundError as exc:
                raise ValueError(str(exc)) from None
    family = resolve_family(cfg)
    recipe = teach_recipe(cfg, family)
    out = Path(cfg.out) if cfg.out else RUNS_ROOT / "teach" / f"{family}-{Path(cfg.demos).resolve().name}"
    result = run_recipe(recipe, scale=scale, out=out, console=console)
    report = _report(cfg, family, out, {s.name: s.manifest for s in result.stages}, result.artifact)
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(report))
    if console is not None:
        console.print(report_markdown(report))
    return report


def _report(cfg: TeachConfig, family: str, out: Path, manifests: dict, artifact: Path | None) -> dict:
    def evaluation(name: str) -> dict | None:
        ev = manifests.get(name, {}).get("evaluation")
        if ev is None:
            return None
        keep = ("suite", "split", "successes", "n", "success_rate", "ci95")
        return {k: ev[k] for k in keep} | {"tasks": {t: {k: v[k] for k in ("successes", "n", "success_rate",
                                                                            "ci_low", "ci_high") if k in v}
                                                      for t, v in ev.get("tasks", {}).items()}}  # fmt: skip

    train = manifests["finetune"]
    return {
        "schema": "embodia.teach/1",
        "family": family,
        "demos": {"path": str(cfg.demos), **manifests["demos"].get("record", {})},
        "cotrain": cfg.cotrain if cfg.cotrain in ("base", "none") else cfg.cotrain.split(","),
        "cotrain_share": cfg.cotrain_share,
        "distill": cfg.distill,
        "init_from": cfg.init_from,
        "finetune": {
            "steps": train.get("train", {}).get("steps"),
            "final_loss": train.get("train", {}).get("final_loss"),
            "seconds": train.get("seconds"),
            "minutes_budget": train.get("config", {}).get("train", {}).get("minutes"),  # as it ran
            "policy": str(artifact.relative_to(out)) if artifact else None,
        },
        "heldout_before": evaluation("eval_before"),
        "heldout_after": evaluation("eval_heldout"),
        "own_before": evaluation("own_before"),
        "own_after": evaluation("own_after"),
        "stages": {name: f"{name}/stage.json" for name in manifests},
        "config": dataclasses.asdict(cfg) | {"train": None},  # the fine-tune's config: finetune/stage.json
    }


def _rate(ev: dict | None) -> str:
    if ev is None:
        return "-"
    lo, hi = ev["ci95"]
    return f"{ev['success_rate']:.0%} ({ev['successes']}/{ev['n']}, Wilson 95 % {lo:.0%}-{hi:.0%})"


def report_markdown(report: dict) -> str:
    ft, demos = report["finetune"], report["demos"]
    budget = f"budget {ft['minutes_budget']} min" if ft["minutes_budget"] else "a fixed step count"
    lines = [
        f"# Teaching {report['family']!r}",
        "",
        f"- demonstrations: {demos.get('saved')} episodes, {demos.get('frames')} frames ({demos['path']})",
        f"- co-training: {report['cotrain']} (share {report['cotrain_share']})",
        f"- fine-tune of {report['init_from']}: {ft['steps']} steps in {(ft['seconds'] or 0) / 60:.1f} min "
        f"({budget}), final loss {ft['final_loss']}; policy: {ft['policy']}",
        "",
        "| | held-out phrasings | the base's own families |",
        "|---|---|---|",
        f"| before | {_rate(report['heldout_before'])} | {_rate(report['own_before'])} |",
        f"| after | {_rate(report['heldout_after'])} | {_rate(report['own_after'])} |",
        "",
    ]
    return "\n".join(lines)
