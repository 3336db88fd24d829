"""The pieces of a recipe: typed stages, each holding the library's own config, chained by name.

    Recipe("base", about="...", artifact="finetune_sentence", stages=(
        Record("stack_d", RecordConfig("pick,stack", episodes=917, seed=900_000, ...)),
        Train("finetune_stroke", preset("finetune", steps=11_640, ...), datasets=["stack_d", ...],
              init_from="finetune_recovery"),
        Evaluate("eval_seen", policy="finetune_sentence", suite="pick,push,stack,touch", expect=(181, 200)),
    ))

A reference (`datasets`, `init_from`, `inputs`, `policy`) names an earlier stage of the same recipe (its
dataset or its policy) or a shipped policy (`base`, `metaworld_mt10`, `metaworld_mt50`). Each stage writes
its own folder `<out>/<stage name>/`; its output is:

    Record    <stage>/dataset        a LeRobotDataset v3.0 (`embodia.data.record.record`)
    Demos     the folder it names    demonstrations recorded elsewhere (teleoperated, converted): read as is
    Train     <stage>/final          the final policy (`embodia.train.loop.train`)
    Average   <stage>/policy         a weight average (`embodia.policy.average.average_checkpoints`)
    Evaluate  <stage>/results.json   closed-loop success with Wilson intervals (`embodia.eval.run.evaluate`)

`differs` says, in words, where a stage does not replay history exactly (a recorder that changed, a
time budget replaced by the step count it reached); it never changes what runs.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from embodia.data.record import RecordConfig
from embodia.policy.checkpoint import SHIPPED_POLICIES
from embodia.train.config import TrainConfig

SHIPPED_NAMES = tuple(SHIPPED_POLICIES)  # base, metaworld_mt10, metaworld_mt50
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class RecipeError(ValueError):
    """A recipe that cannot be run as asked (an unknown stage, a missing earlier stage, a bad reference)."""


@dataclass(frozen=True)
class Record:
    """Record expert demonstrations: `embodia record` with `config`."""

    name: str
    config: RecordConfig
    differs: str = ""

    output = "dataset"


@dataclass(frozen=True)
class Demos:
    """Demonstrations recorded elsewhere (in the browser with `embodia teleop --sim`, by a leader arm,
    converted from another format): an existing LeRobotDataset folder, read where it is. Train stages
    name it like a Record stage; it is fingerprinted by content, so that episodes added to the folder
    re-run the stages that read it (and only those)."""

    name: str
    path: str
    differs: str = ""

    output = "dataset"  # (the folder `path` itself; the stage's own folder holds its manifest)


@dataclass(frozen=True)
class Train:
    """Train (or fine-tune, with `init_from`) on the datasets of earlier Record stages.

    `config` is a TrainConfig without datasets or init_from (those are references here, resolved to
    folders when the stage runs); `weights` is its dataset_weights and `distill` its distill weights, one
    per dataset. `gpu`: the stage was trained on a GPU; `--device cuda` puts it there (the others keep
    their config's device)."""

    name: str
    config: TrainConfig
    datasets: tuple[str, ...] = ()
    init_from: str | None = None
    weights: tuple[float, ...] | None = None
    distill: tuple[float, ...] | None = None
    gpu: bool = False
    differs: str = ""

    output = "final"

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(self.datasets))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.distill is not None:
            object.__setattr__(self, "distill", tuple(float(w) for w in self.distill))
        if (
            self.config.datasets
            or self.config.init_from
            or self.config.dataset_weights
            or self.config.distill
        ):
            raise RecipeError(
                f"Train stage {self.name!r}: give datasets, weights and init_from on the stage (references "
                "to earlier stages or shipped names), not inside its TrainConfig"
            )
        if not self.datasets:
            raise RecipeError(f"Train stage {self.name!r}: no datasets (names of earlier Record stages)")
        if self.weights is not None and len(self.weights) != len(self.datasets):
            raise RecipeError(
                f"Train stage {self.name!r}: {len(self.weights)} weights for {len(self.datasets)} datasets"
            )
        if self.distill is not None and (len(self.distill) != len(self.datasets) or not self.init_from):
            raise RecipeError(
                f"Train stage {self.name!r}: distill needs init_from and one weight per dataset "
                f"({len(self.distill)} for {len(self.datasets)})"
            )


@dataclass(frozen=True)
class Average:
    """Average the weights of fine-tunes of one base (WiSE-FT, model soups)."""

    name: str
    inputs: tuple[str, ...]
    weights: tuple[float, ...] | None = None  # default uniform; >= 0, summing to 1
    differs: str = ""

    output = "policy"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))


@dataclass(frozen=True)
class Evaluate:
    """Closed-loop evaluation of a policy; `expect` is the shipped figure (successes, episodes) that a
    rebuild is checked against (inside its Wilson 95 % interval or not)."""

    name: str
    policy: str
    suite: str
    split: str = "train"
    episodes: int = 50  # per task
    num_envs: int = 2
    seed: int = 0
    max_steps: int | None = None
    videos_per_task: int = 1
    expect: tuple[int, int] | None = None
    in_process: bool = False  # run the envs in this process (the tiny scale: no subprocess start-up)
    task_files: tuple[str, ...] = ()  # the files that define the suite's families, when they are a user's
    differs: str = ""

    output = "results.json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_files", tuple(self.task_files))
        if self.expect is not None:
            s, n = self.expect
            if not 0 <= s <= n or n <= 0:
                raise RecipeError(
                    f"Evaluate stage {self.name!r}: expect must be (successes, n), got {self.expect}"
                )
            object.__setattr__(self, "expect", (int(s), int(n)))


Stage = Record | Demos | Train | Average | Evaluate


def refs_of(stage: Stage) -> tuple[str, ...]:
    """The names a stage reads from (earlier stages or shipped policies), in order."""
    if isinstance(stage, Train):
        return (*stage.datasets, *([stage.init_from] if stage.init_from else []))
    if isinstance(stage, Average):
        return stage.inputs
    if isinstance(stage, Evaluate):
        return (stage.policy,)
    return ()


@dataclass(frozen=True)
class Recipe:
    """A chain of stages that rebuilds one artifact (`artifact`: the name of the stage whose output it is).
    `shipped`: the shipped policy it rebuilds, if any; `notes`: what differs from history overall."""

    name: str
    about: str
    stages: tuple[Stage, ...]
    artifact: str
    shipped: str | None = None
    notes: str = ""
    stage_names: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "stage_names", tuple(s.name for s in self.stages))
        self._check()

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise RecipeError(
            f"recipe {self.name!r} has no stage {name!r}; its stages: {', '.join(self.stage_names)}"
        )

    def replace_stage(self, name: str, **changes) -> Recipe:
        """A copy with stage `name`'s fields changed, e.g. `recipe.replace_stage("finetune_r1",
        init_from="...")` or `config=dataclasses.replace(stage.config, lr=1e-4)`."""
        self.stage(name)
        stages = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in self.stages)
        return dataclasses.replace(self, stages=stages)

    def _check(self) -> None:
        seen: dict[str, Stage] = {}
        for s in self.stages:
            where = f"recipe {self.name!r}, stage {s.name!r}"
            if not _NAME.match(s.name):
                raise RecipeError(f"{where}: a stage name is lower-case letters, digits and '_'")
            if s.name in seen or s.name in SHIPPED_NAMES:
                raise RecipeError(f"{where}: the name is taken (by another stage or a shipped policy)")
            for ref in refs_of(s):
                _check_ref(where, s, ref, seen)
            seen[s.name] = s
        if self.artifact not in seen:
            raise RecipeError(f"recipe {self.name!r}: artifact {self.artifact!r} is not one of its stages")


def _check_ref(where: str, stage: Stage, ref: str, seen: dict[str, Stage]) -> None:
    wants_data = isinstance(stage, Train) and ref in stage.datasets
    if ref in seen:
        kind = seen[ref]
        if wants_data and not isinstance(kind, Record | Demos):
            raise RecipeError(
                f"{where}: dataset {ref!r} is a {type(kind).__name__} stage, not a Record or Demos"
            )
        if not wants_data and not isinstance(kind, Train | Average):
            raise RecipeError(f"{where}: policy {ref!r} is a {type(kind).__name__} stage, not Train/Average")
    elif wants_data or ref not in SHIPPED_NAMES:
        raise RecipeError(
            f"{where}: {ref!r} is neither an earlier stage nor a shipped policy ({', '.join(SHIPPED_NAMES)})"
        )
