"""A recipe at a scale: `full` runs the recorded settings; `tiny` shrinks every stage to seconds on the CPU
(a smoke test of the whole chain: every stage kind, every reference, the same code paths).

tiny:
    Record    one episode per task (Meta-World suites cut to their first TINY_METAWORLD_TASKS tasks),
              32 px, one env, failed episodes kept (so no recording comes out empty)
    Train     3 steps at batch 2 of the `tiny` preset's model (TINY_MODEL); a fine-tune keeps the
              architecture of what it starts from (init_from overrides the model), so one from a shipped
              policy runs 2 steps at batch 2 on its 1.6 M parameters; on the CPU, the frame cache inside
              the run's folder
    Evaluate  one episode per task of at most TINY_MAX_STEPS steps, one env in this process, no video
    Average   as is

full, `device`: "cpu" puts every Train stage on the CPU; "cuda" puts the stages the recipe marks `gpu`
on the GPU (with their frame cache on /dev/shm when there is one: decoding into RAM, not disk); the
other stages keep their config's device (None: a GPU when torch sees one).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from embodia.recipes.stages import SHIPPED_NAMES, Average, Demos, Evaluate, Record, Stage, Train
from embodia.train.config import TINY_MODEL

SCALES = ("full", "tiny")
DEVICES = ("cpu", "cuda")
TINY_METAWORLD_TASKS = 1
TINY_STEPS, TINY_STEPS_SHIPPED, TINY_BATCH = 3, 2, 2
TINY_IMAGE = 32
TINY_MAX_STEPS = 10
SHM = Path("/dev/shm")


def at_scale(stage: Stage, scale: str, device: str | None, cache_dir: Path) -> Stage:
    """`stage` as it runs at `scale` on `device`; `cache_dir` is the tiny runs' frame cache."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    if device not in (None, *DEVICES):
        raise ValueError(f"unknown device {device!r}; valid: {', '.join(DEVICES)} (or none: automatic)")
    if scale == "full":
        return _full(stage, device)
    if isinstance(stage, Record):
        return _tiny_record(stage)
    if isinstance(stage, Train):
        return _tiny_train(stage, cache_dir)
    if isinstance(stage, Evaluate):
        return replace(
            stage,
            suite=tiny_tasks(stage.suite),
            episodes=1,
            num_envs=1,
            videos_per_task=0,
            max_steps=TINY_MAX_STEPS,
            in_process=True,
        )
    assert isinstance(stage, Average | Demos)  # (the user's demonstrations are what they are)
    return stage


def _full(stage: Stage, device: str | None) -> Stage:
    if not isinstance(stage, Train) or device is None:
        return stage
    if device == "cpu":
        return replace(stage, config=replace(stage.config, device="cpu"))
    if not stage.gpu:
        return stage
    cache = stage.config.cache_dir
    if cache is None and SHM.is_dir():
        cache = str(SHM / "embodia-frames")
    return replace(stage, config=replace(stage.config, device="cuda", cache_dir=cache))


def tiny_tasks(spec: str) -> str:
    """A Meta-World task spec cut to its first few tasks (50 subprocess envs would take minutes)."""
    if not spec.startswith("metaworld:"):
        return spec
    from embodia.sim.metaworld import resolve_tasks

    return "metaworld:" + ",".join(resolve_tasks(spec.split(":", 1)[1])[:TINY_METAWORLD_TASKS])


def _worlds(tasks: str) -> int:
    if tasks.startswith("metaworld:"):
        from embodia.sim.metaworld import resolve_tasks

        return len(resolve_tasks(tasks.split(":", 1)[1]))
    if tasks == "tabletop":
        from embodia.sim.tasks import FAMILIES

        return len(FAMILIES)
    return len(tasks.split(","))


def _tiny_record(stage: Record) -> Record:
    tasks = tiny_tasks(stage.config.tasks)
    config = replace(
        stage.config,
        tasks=tasks,
        episodes=_worlds(tasks),
        num_envs=1,
        image_size=TINY_IMAGE,
        keep_failures=True,
    )
    return replace(stage, config=config)


def _tiny_train(stage: Train, cache_dir: Path) -> Train:
    shipped = stage.init_from in SHIPPED_NAMES
    cfg = replace(
        stage.config,
        steps=TINY_STEPS_SHIPPED if shipped else TINY_STEPS,
        batch_size=TINY_BATCH,
        warmup_steps=1,
        save_every=1000,
        keep_checkpoints=1,
        log_every=1,
        minutes=0.0,
        eval_every=0,
        prefetch=0,
        device="cpu",
        cache_dir=str(cache_dir),
        # From scratch: the tiny model; a fine-tune's architecture is its checkpoint's anyway.
        model=stage.config.model if stage.init_from else TINY_MODEL,
    )
    return replace(stage, config=cfg)
