"""Run a recipe: its stages in order, each in `<out>/<stage>/`, skipping those already up to date.

Each stage folder holds a `stage.json` manifest:

    {"schema": "embodia.recipe.stage/1", "recipe", "scale", "stage", "kind", "complete",
     "config":  the stage's resolved config (references by name, not by folder; where it runs, i.e.
                device, frame cache and prefetch, left out: they do not change what is built),
     "run":     {"device", "cache_dir", "prefetch"} (Train stages), {"ray"} (Record and Evaluate stages
                run on Ray: where they ran, not what they built; their outputs equal a local run's),
     "inputs":  {ref: {"kind": "dataset"|"policy",
                       "path": "<stage>/dataset" | "demos:<stage>" | "shipped:<name>",
                       "fingerprint"}},
     "output":  {"path" (inside the stage folder), "fingerprint"},
     "differs", "git_sha", "started_utc", "finished_utc", "seconds",
     "record" | "train" | "evaluation": what the stage measured}

A stage is skipped when its manifest is complete, its config and its inputs' fingerprints are the
current ones and its output is still what it wrote; otherwise its folder is removed and it runs again
(an interrupted Train stage with the same config and inputs resumes from its last checkpoint instead).
Since a stage's inputs are fingerprinted by content, a changed stage re-runs the stages that read it
and only those. `from_stage` re-runs that stage and the ones after it, reusing the earlier outputs
as they are; `until_stage` stops after it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from embodia.configs import to_dict
from embodia.recipes.catalog import get_recipe
from embodia.recipes.fingerprint import fingerprint
from embodia.recipes.scale import SCALES, at_scale
from embodia.recipes.stages import (
    Average,
    Demos,
    Evaluate,
    Recipe,
    RecipeError,
    Record,
    Stage,
    Train,
    refs_of,
)
from embodia.runs import RUNS_ROOT, atomic_write_text, git_sha

SCHEMA = "embodia.recipe.stage/1"
MANIFEST = "stage.json"
FRAME_CACHE = "_frame_cache"  # the tiny scale's frame cache, inside `out` (stage names cannot start with _)
_RUN_ONLY = ("device", "cache_dir", "prefetch", "out")  # TrainConfig fields that say where, not what


@dataclass
class StageResult:
    name: str
    kind: str
    status: Literal["ran", "skipped"]
    output: Path
    seconds: float  # spent in this call (a skipped stage: the checks only)
    manifest: dict[str, Any]
    note: str = ""  # why it ran ("config changed", ...) or a warning about a reused stage


@dataclass
class RecipeResult:
    recipe: str
    scale: str
    out: Path
    stages: list[StageResult] = field(default_factory=list)
    artifact: Path | None = None  # None when `until_stage` stopped before the artifact's stage

    @property
    def evaluations(self) -> dict[str, dict]:
        return {s.name: s.manifest["evaluation"] for s in self.stages if "evaluation" in s.manifest}

    def summary_table(self):
        from rich.table import Table

        table = Table(title=f"recipe {self.recipe} ({self.scale}): {self.out}")
        for col in ("stage", "kind", "status", "seconds", "output", "result"):
            table.add_column(col, overflow="fold")
        for s in self.stages:
            table.add_row(s.name, s.kind, s.status, f"{s.seconds:.1f}", str(s.output), _outcome(s.manifest))
        table.caption = f"artifact: {self.artifact}" if self.artifact else "artifact: not built (--until)"
        return table


def run_recipe(
    name: str | Recipe,
    *,
    scale: str = "full",
    device: str | None = None,
    ray: str | None = None,
    from_stage: str | None = None,
    until_stage: str | None = None,
    out: str | Path | None = None,
    console=None,
) -> RecipeResult:
    """Run recipe `name` (a catalogued recipe's name, or a Recipe built by the caller, as `embodia teach`
    does) at `scale` ("full" or "tiny") into `out` (default ./embodia_runs/recipe/<name>-<scale>/); see
    the module docstring. `ray`: a Ray cluster's address ("local", "auto", ...; embodia.cluster) on which the
    Record and Evaluate stages play their episodes (the same episodes, committed in the same order)."""
    recipe = name if isinstance(name, Recipe) else get_recipe(name)
    name = recipe.name
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    out = Path(out) if out is not None else RUNS_ROOT / "recipe" / f"{name}-{scale}"
    start = recipe.stage_names.index(recipe.stage(from_stage).name) if from_stage else 0
    stop = recipe.stage_names.index(recipe.stage(until_stage).name) if until_stage else len(recipe.stages) - 1
    if start > stop:
        raise RecipeError(f"--from {from_stage} comes after --until {until_stage} in recipe {name!r}")
    stages = [at_scale(s, scale, device, out / FRAME_CACHE) for s in recipe.stages]
    run = _Run(recipe, scale, out, console, ray)
    result = RecipeResult(recipe=name, scale=scale, out=out)
    result.stages += run.reuse_earlier(stages, start, stop, from_stage)
    for stage in stages[start : stop + 1]:
        result.stages.append(run.stage(stage, force=from_stage is not None))
    if recipe.artifact in recipe.stage_names[: stop + 1]:
        result.artifact = run.output_of(recipe.stage(recipe.artifact))
    run.say(f"[bold]{name}[/] ({scale}): artifact {result.artifact or 'not built (stopped before it)'}")
    return result


class _Run:
    def __init__(self, recipe: Recipe, scale: str, out: Path, console, ray: str | None = None) -> None:
        self.recipe, self.scale, self.out, self.console, self.ray = recipe, scale, out, console, ray
        self.n = len(recipe.stages)

    def say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)

    def output_of(self, stage: Stage) -> Path:
        if isinstance(stage, Demos):
            return Path(stage.path)
        return self.out / stage.name / stage.output

    # ------------------------------------------------------------------ references
    def resolve(self, ref: str, data: bool) -> tuple[Path, str, str]:
        """(folder, kind, how the manifest shows it) of a reference."""
        if ref in self.recipe.stage_names:
            stage = self.recipe.stage(ref)
            path = self.output_of(stage)
            if not path.exists():
                raise RecipeError(f"{ref}: its output {path} is missing; run the recipe from {ref!r}")
            shown = f"demos:{ref}" if isinstance(stage, Demos) else f"{ref}/{stage.output}"
            return path, "dataset" if data else "policy", shown
        from embodia.policy.checkpoint import resolve_policy

        return resolve_policy(ref), "policy", f"shipped:{ref}"

    def inputs(self, stage: Stage) -> dict[str, dict[str, str]]:
        data = set(stage.datasets) if isinstance(stage, Train) else set()
        found = {}
        for ref in refs_of(stage):
            path, kind, shown = self.resolve(ref, ref in data)
            found[ref] = {"kind": kind, "path": shown, "fingerprint": fingerprint(path, kind)}
        return found

    # ------------------------------------------------------------------ --from
    def reuse_earlier(self, stages: list[Stage], start: int, stop: int, from_stage: str | None) -> list:
        """The stages before `start`, taken as they are; those that later stages need must be complete."""
        needed = _needed_before(stages, start, stop)
        reused = []
        for stage in stages[:start]:
            manifest = read_manifest(self.out / stage.name)
            output = self.output_of(stage)
            if not (manifest and manifest.get("complete") and output.exists()):
                if stage.name in needed:
                    raise RecipeError(
                        f"--from {from_stage}: the earlier stage {stage.name!r} is not complete in {self.out}; "
                        f"produce it first: embodia recipe run {self.recipe.name} --scale {self.scale} "
                        f"--until {stage.name} (with the same --out), or run without --from"
                    )
                continue
            note = (
                ""
                if manifest["config"] == _jsonable(stage_config(stage))
                else "reused, but its config differs"
            )
            if note:
                self.say(f"[yellow]{stage.name}: {note} from the recipe's (--from {from_stage})[/]")
            reused.append(StageResult(stage.name, _kind(stage), "skipped", output, 0.0, manifest, note))
        return reused

    # ------------------------------------------------------------------ one stage
    def stage(self, stage: Stage, force: bool) -> StageResult:
        t0 = time.perf_counter()
        folder = self.out / stage.name
        index = self.recipe.stage_names.index(stage.name) + 1
        config, inputs = _jsonable(stage_config(stage)), self.inputs(stage)
        manifest = read_manifest(folder)
        output = self.output_of(stage)
        why = "forced (--from)" if force else _why_stale(manifest, config, inputs, output, _out_kind(stage))
        if why is None:
            self.say(f"[{index}/{self.n}] {stage.name}: up to date, skipped ({output})")
            if isinstance(stage, Evaluate):  # the shipped figure may have changed; the results have not
                _add_verdict(stage, manifest)
                write_manifest(folder, manifest)
            return StageResult(
                stage.name, _kind(stage), "skipped", output, time.perf_counter() - t0, manifest
            )
        resume = not force and _can_resume(stage, manifest, config, inputs, folder)
        self.say(
            f"[{index}/{self.n}] [bold]{stage.name}[/] ({_kind(stage)}): "
            f"{'resuming' if resume else 'running'} ({why})"
        )
        if stage.differs:
            self.say(f"    differs from history: {stage.differs}")
        if not resume and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema": SCHEMA,
            "recipe": self.recipe.name,
            "scale": self.scale,
            "stage": stage.name,
            "kind": _kind(stage),
            "complete": False,
            "config": config,
            **_run_settings(stage, self.out, self.ray),
            "inputs": inputs,
            "differs": stage.differs,
            "git_sha": git_sha(),
            "started_utc": _now(),
        }
        write_manifest(folder, manifest)
        measured = self.execute(stage, folder, resume)
        if isinstance(stage, (Train, Average)):
            self.stamp(stage, output, inputs, manifest["git_sha"])
        seconds = time.perf_counter() - t0
        manifest |= {
            "complete": True,
            "output": {"path": stage.output, "fingerprint": fingerprint(output, _out_kind(stage))},
            "finished_utc": _now(),
            "seconds": round(seconds, 2),
            **measured,
        }
        _add_verdict(stage, manifest)
        write_manifest(folder, manifest)
        self.say(f"    {stage.name}: done in {seconds:.1f} s -> {output}  {_outcome(manifest)}")
        return StageResult(stage.name, _kind(stage), "ran", output, seconds, manifest, why)

    def stamp(self, stage: Stage, output: Path, inputs: dict, commit: str | None) -> None:
        """A built policy's metadata names the recipe, stage and commit that built it, and its inputs
        by stage reference rather than by this machine's folders."""
        from embodia.policy.checkpoint import stamp_metadata

        updates: dict[str, Any] = {
            "recipe": {"name": self.recipe.name, "stage": stage.name, "scale": self.scale, "commit": commit},
            "inputs": {ref: spec["path"] for ref, spec in inputs.items()},
        }
        if isinstance(stage, Train):
            updates["datasets"] = [inputs[ref]["path"] for ref in stage.datasets]
        else:  # the averaged checkpoints, by reference instead of by absolute path
            meta = json.loads((output / "config.json").read_text()).get("metadata", {})
            updates["averaged_from"] = [
                {**entry, "path": inputs[ref]["path"]}
                for entry, ref in zip(meta.get("averaged_from", []), stage.inputs, strict=True)
            ]
        stamp_metadata(output, updates)

    def execute(self, stage: Stage, folder: Path, resume: bool) -> dict[str, Any]:
        if isinstance(stage, Record):
            return self._record(stage, folder)
        if isinstance(stage, Demos):
            return self._demos(stage)
        if isinstance(stage, Train):
            return self._train(stage, folder, resume)
        if isinstance(stage, Average):
            from embodia.policy.average import average_checkpoints

            paths = [self.resolve(ref, False)[0] for ref in stage.inputs]
            weights = list(stage.weights) if stage.weights is not None else None
            average_checkpoints(paths, folder / stage.output, weights)
            return {}
        return self._evaluate(stage, folder)

    def _record(self, stage: Record, folder: Path) -> dict[str, Any]:
        from embodia.data.record import record

        cfg = dataclasses.replace(stage.config, ray=self.ray) if self.ray else stage.config
        r = record(cfg, folder / stage.output)
        if r.saved == 0:
            raise RecipeError(f"{stage.name}: no episode was kept ({r.attempted} attempted, none succeeded)")
        return {
            "record": {
                "saved": r.saved,
                "attempted": r.attempted,
                "frames": r.frames,
                "seconds": round(r.seconds, 2),
                "per_task": r.per_task,
            }
        }

    def _demos(self, stage: Demos) -> dict[str, Any]:
        """Open the folder as a dataset (a broken one fails here, before anything trains on it)."""
        from embodia.data.reader import LeRobotDataset

        ds = LeRobotDataset.open(stage.path)
        return {"record": {"saved": ds.num_episodes, "attempted": ds.num_episodes, "frames": ds.num_frames,
                           "instructions": len(ds.tasks)}}  # fmt: skip

    def _train(self, stage: Train, folder: Path, resume: bool) -> dict[str, Any]:
        from embodia.sim.tasks import paraphrases
        from embodia.train.loop import train

        # A deep copy: training fills in the model's embodiments and a time budget's step count.
        cfg = dataclasses.replace(
            copy.deepcopy(stage.config),
            datasets=[str(self.resolve(ref, True)[0]) for ref in stage.datasets],
            dataset_weights=list(stage.weights) if stage.weights is not None else None,
            distill=list(stage.distill) if stage.distill is not None else None,
            init_from=str(self.resolve(stage.init_from, False)[0]) if stage.init_from else None,
            name=stage.name,
        )
        train(cfg, folder, resume=resume, console=self.console, phrasings=paraphrases)
        return {"train": {"steps": cfg.steps, "final_loss": _last_loss(folder / "metrics.jsonl")}}

    def _evaluate(self, stage: Evaluate, folder: Path) -> dict[str, Any]:
        from embodia.eval.config import EvalConfig
        from embodia.eval.ray_runner import evaluate_on_ray
        from embodia.eval.run import evaluate
        from embodia.policy.policy import Policy

        path = self.resolve(stage.policy, False)[0]
        policy = Policy.from_pretrained(path)
        cfg = EvalConfig(suite=stage.suite, episodes=stage.episodes, num_envs=stage.num_envs, split=stage.split,
                         seed=stage.seed, max_steps=stage.max_steps, videos_per_task=stage.videos_per_task,
                         out_dir=str(folder), image_size=_image_size(policy, stage.suite),
                         task_files=list(stage.task_files), ray=self.ray)  # fmt: skip
        if self.ray:  # each actor loads its own copy of the policy's folder
            result = evaluate_on_ray(policy, Policy.from_pretrained, cfg, ship=path,
                                     show_progress=self.console is not None)  # fmt: skip
        else:
            result = evaluate(
                policy, cfg=cfg, in_process=stage.in_process, show_progress=self.console is not None
            )
        r = result.overall
        return {
            "evaluation": {
                "suite": stage.suite,
                "split": stage.split,
                "successes": r.successes,
                "n": r.n,
                "success_rate": r.rate,
                "ci95": [r.ci_low, r.ci_high],
                "tasks": {t: v.to_dict() for t, v in result.tasks.items()},
            }
        }


# ---------------------------------------------------------------------- configs and manifests
def stage_config(stage: Stage) -> dict[str, Any]:
    """What a stage builds, as JSON: equal configs (and equal inputs) build the same output."""
    if isinstance(stage, Record):  # `ray` says where its episodes ran, not what they are
        return {"kind": "record", "record": {k: v for k, v in to_dict(stage.config).items() if k != "ray"}}
    if isinstance(stage, Demos):  # what it holds is its output's fingerprint, not where it lies
        return {"kind": "demos"}
    if isinstance(stage, Train):
        cfg = to_dict(stage.config)
        for key in _RUN_ONLY:
            cfg.pop(key, None)
        cfg |= {
            "datasets": list(stage.datasets),
            "init_from": stage.init_from,
            "dataset_weights": list(stage.weights) if stage.weights is not None else None,
        }
        cfg.pop("distill", None)  # (only where set: the stages built before it existed stay current)
        if stage.distill is not None:
            cfg["distill"] = list(stage.distill)
        return {"kind": "train", "train": cfg}
    if isinstance(stage, Average):
        return {"kind": "average", "inputs": list(stage.inputs), "weights": stage.weights}
    fields = {f.name: getattr(stage, f.name) for f in dataclasses.fields(stage)}
    if not fields["task_files"]:  # (so that the recipes' evaluations built before task files stay current)
        fields.pop("task_files")
    for key in ("name", "expect", "differs", "in_process"):  # the verdict is recomputed; in_process: where
        fields.pop(key)
    return {"kind": "evaluate", "evaluate": fields}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("schema") == SCHEMA else None


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def _why_stale(manifest: dict | None, config: dict, inputs: dict, output: Path, kind: str) -> str | None:
    """Why a stage must run, or None when its output is up to date."""
    if manifest is None:
        return "not run yet"
    if not manifest.get("complete"):
        return "incomplete"
    if manifest.get("config") != config:
        return "config changed"
    old = _fingerprints(manifest.get("inputs"))
    changed = [ref for ref, fp in _fingerprints(inputs).items() if old.get(ref) != fp]
    if changed or set(old) != set(inputs):
        return f"inputs changed: {', '.join(changed or sorted(set(old) ^ set(inputs)))}"
    if not output.exists():
        return "output missing"
    try:
        if fingerprint(output, kind) != manifest.get("output", {}).get("fingerprint"):
            return "output changed since it was written"
    except FileNotFoundError:
        return "output incomplete"
    return None


def _can_resume(stage: Stage, manifest: dict | None, config: dict, inputs: dict, folder: Path) -> bool:
    """An interrupted Train stage with the same config and inputs continues from its last checkpoint."""
    if not isinstance(stage, Train) or manifest is None or manifest.get("complete"):
        return False
    same = manifest.get("config") == config and _fingerprints(manifest.get("inputs")) == _fingerprints(inputs)
    return same and _latest_checkpoint(folder) is not None


def _add_verdict(stage: Stage, manifest: dict[str, Any]) -> None:
    """An evaluation's rate against the shipped figure's Wilson 95 % interval (expect may change
    without re-running the evaluation)."""
    if not isinstance(stage, Evaluate) or "evaluation" not in manifest:
        return
    from embodia.eval.stats import wilson_interval

    ev = manifest["evaluation"]
    if stage.expect is None:
        ev.pop("expected", None)
        ev.pop("within_expected", None)
        return
    s, n = stage.expect
    lo, hi = wilson_interval(s, n)
    ev["expected"] = {"successes": s, "n": n, "success_rate": s / n, "ci95": [lo, hi]}
    # A tiny run's handful of 10-step episodes says nothing about the shipped figure.
    comparable = manifest.get("scale") == "full" and ev["success_rate"] is not None
    ev["within_expected"] = lo <= ev["success_rate"] <= hi if comparable else None


def _outcome(manifest: dict[str, Any]) -> str:
    if "evaluation" in manifest:
        ev = manifest["evaluation"]
        text = f"{ev['success_rate']:.1%} ({ev['successes']}/{ev['n']})"
        if "expected" in ev:
            ex = ev["expected"]
            verdict = {True: "inside", False: "OUTSIDE", None: "not comparable at this scale"}[
                ev["within_expected"]
            ]
            text += (
                f"; shipped {ex['successes']}/{ex['n']}, Wilson 95 % "
                f"[{ex['ci95'][0]:.1%}, {ex['ci95'][1]:.1%}]: {verdict}"
            )
        return text
    if "record" in manifest:
        r = manifest["record"]
        return f"{r['saved']} episodes of {r['attempted']}, {r['frames']} frames"
    if "train" in manifest:
        return f"{manifest['train']['steps']} steps, loss {manifest['train']['final_loss']}"
    return ""


def _needed_before(stages: list[Stage], start: int, stop: int) -> set[str]:
    """Names of the stages before `start` that the stages start..stop read, directly or through others."""
    by_name = {s.name: s for s in stages}
    needed: set[str] = set()
    todo = [ref for s in stages[start : stop + 1] for ref in refs_of(s)]
    while todo:
        ref = todo.pop()
        if ref in by_name and ref not in needed:
            needed.add(ref)
            todo += refs_of(by_name[ref])
    return needed & {s.name for s in stages[:start]}


def _run_settings(stage: Stage, out: Path, ray: str | None) -> dict[str, Any]:
    if isinstance(stage, Record | Evaluate):
        return {"run": {"ray": ray}} if ray else {}
    if not isinstance(stage, Train):
        return {}
    cache = stage.config.cache_dir
    if cache is not None and Path(cache).is_relative_to(out):
        cache = Path(cache).relative_to(out).as_posix()  # no absolute paths of this machine in the manifest
    return {"run": {"device": stage.config.device, "cache_dir": cache, "prefetch": stage.config.prefetch}}


def _image_size(policy, suite: str) -> int:
    """The camera size the policy was trained on for the suite's embodiment (as benchmarks/metaworld_suite.py)."""
    info = policy.embodiments.get("sawyer" if suite.startswith("metaworld:") else "so101")
    shapes = info.image_shapes if info is not None else {}
    return int(next(iter(shapes.values()))[0]) if shapes else int(policy.cfg.image_size)


def _latest_checkpoint(folder: Path) -> Path | None:
    from embodia.train.loop import latest_checkpoint

    return latest_checkpoint(folder)


def _last_loss(metrics: Path) -> float | None:
    try:
        lines = metrics.read_text().splitlines()
        return round(float(json.loads(lines[-1])["loss"]), 5) if lines else None
    except (OSError, ValueError, KeyError):
        return None


def _fingerprints(inputs: dict | None) -> dict[str, str]:
    return {ref: v.get("fingerprint") for ref, v in (inputs or {}).items()}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _kind(stage: Stage) -> str:
    return type(stage).__name__.lower()


def _out_kind(stage: Stage) -> str:
    kinds = {Record: "dataset", Demos: "dataset", Train: "policy", Average: "policy", Evaluate: "file"}
    return kinds[type(stage)]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
