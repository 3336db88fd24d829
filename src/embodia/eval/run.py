"""`evaluate()`: closed-loop evaluation of a chunking policy on a suite -> results.json, videos, report.

Output folder (default ``./embodia_runs/eval/<time>-<suite>/``)::

    manifest.json   the command's inputs, seeds, versions, git SHA (as every embodia command writes)
    results.json    success per task / group / overall with Wilson 95 % intervals, every episode with its
                    seed, the checkpoint hash, git SHA and package versions (schema below)
    videos/         front-camera mp4s of the first `videos_per_task` episodes of each task
    report.html     the same numbers as tables and a chart, with the videos inline

results.json (``"schema": "embodia.eval/1"``)::

    {"command", "suite", "kind", "split", "episodes_per_task", "num_envs", "replan_every", "join", "ensemble", "delay",
     "chunk_size", "n_action_steps", "image_size", "max_steps", "seed", "seed_base", "embodiment",
     "checkpoint_hash", "policy_class", "flow_steps", "flow_noise_scale" (local flow policies), "overall": RATE,
     "mean_task_success_rate", "groups": {name: RATE},
     "tasks": {name: RATE + {"group"}}, "templates": {"<family> (<split>): <template>": RATE} (tabletop
     only), "failures": {task: {label: count}} (envs that report where an episode stopped: the
     tabletop, see embodia.sim.progress), "measures": {task: {kind: {"succeeded"|"failed": {"episodes",
     <measure>: median}}}} (how far off episodes were: kind "grasp" or "push", see embodia.sim.progress),
     "episodes": [{"index", "task", "group", "instruction", "seed", "success", "steps", "chunks", "video",
     "stages", "failure", "measures"}], "seconds", "provenance": {"git_sha",
     "versions", "python", "platform", "created_utc"}}
    RATE = {"successes", "n", "success_rate", "ci95": [low, high]}
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from embodia.eval.config import EvalConfig
from embodia.eval.journal import JOURNAL, Journal, check_resumable
from embodia.eval.protocol import ChunkPolicy
from embodia.eval.rollout import (
    EVAL_SEED_BASE,
    EpisodeResult,
    EpisodeSpec,
    check_policy,
    plan_episodes,
    run_rollouts,
)
from embodia.eval.stats import Rate, mean_rate, summarise
from embodia.eval.suites import Suite, resolve_suite
from embodia.policy.executor import ExecutionConfig
from embodia.runs import atomic_write_text, git_sha, new_run_dir, package_versions, write_manifest
from embodia.sim.progress import measure_text
from embodia.sim.task_files import load_task_file, task_files_record
from embodia.sim.vector import VectorRunner

if TYPE_CHECKING:
    import gymnasium as gym

    from embodia.report.html import Report

SCHEMA = "embodia.eval/1"


@dataclass
class EvalResult:
    out_dir: Path
    results_path: Path
    report_path: Path
    suite: Suite
    overall: Rate
    mean_task_rate: float | None
    groups: dict[str, Rate]
    tasks: dict[str, Rate]
    episodes: list[EpisodeResult]
    seconds: float
    checkpoint_hash: str
    # Tabletop only: success per instruction template ("tap the {color} cube"), so that a phrasing the
    # policy does not ground shows up by name instead of vanishing into its family's average.
    templates: dict[str, Rate] = field(default_factory=dict)
    # Failed episodes per task by where they stopped ("missed grasp": 12, ...), for envs that report it.
    failures: dict[str, dict[str, int]] = field(default_factory=dict)
    # How far off episodes were, per task, kind of measure and outcome (medians; see measure_medians).
    measures: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)

    @property
    def videos(self) -> list[Path]:
        return [ep.video for ep in self.episodes if ep.video is not None]


def evaluate(
    policy: ChunkPolicy,
    suite: str | None = None,
    cfg: EvalConfig | None = None,
    *,
    in_process: bool = False,
    show_progress: bool = True,
    plan: Sequence[EpisodeSpec] | None = None,
    command: str = "eval",
    **settings: Any,
) -> EvalResult:
    """Evaluate `policy` closed-loop: `cfg.episodes` per task of `cfg.suite`, `cfg.num_envs` envs in
    parallel. `suite` and keyword `settings` (EvalConfig fields: episodes=, num_envs=, split=, ...)
    override `cfg` (default: EvalConfig's defaults), so `evaluate(policy, "pick", episodes=10)` works.

    EvalConfig (eval/config.py) says what each setting does. `in_process` runs the envs in this process
    (debugging, tests) instead of subprocesses.

    A policy serving several embodiments (an `embodiments` collection) is evaluated as the one the
    suite runs (e.g. "sawyer" for Meta-World) whatever its default; the default is restored after.

    `plan` replaces the planned episodes (their tasks from the suite, their own seeds: `embodia demo`
    runs seeds 0..N-1); `command` names the run in its manifest and default folder.
    """
    cfg = _with_settings(cfg or EvalConfig(), suite, settings)
    k = check_policy(policy, cfg.execution)
    if cfg.num_envs <= 0:
        raise ValueError(f"num_envs must be positive, got {cfg.num_envs}")
    if cfg.image_size <= 0:
        raise ValueError(f"image_size must be a positive even number (yuv420p video), got {cfg.image_size}")
    if cfg.max_steps is not None and cfg.max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {cfg.max_steps}")
    for path in cfg.task_files:  # before the suite is resolved: it may name their families
        load_task_file(path)
    spec = resolve_suite(cfg.suite, cfg.split)
    embodiment = suite_embodiment(policy, spec)
    factory = spec.env_factory(embodiment, cfg.image_size, cfg.max_steps)
    given_plan = plan is not None
    plan = list(plan) if given_plan else plan_episodes(spec, cfg.episodes, cfg.seed, cfg.videos_per_task)
    out = eval_run_dir(cfg, command)
    settings = eval_settings(policy, cfg, spec, command, k, embodiment, given_plan)
    if cfg.resume is not None:
        check_resumable(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, command, settings | {"out": str(out)}, seeds=sorted({e.seed for e in plan}),
                   resumed=cfg.resume is not None)  # fmt: skip
    journal = Journal(out)
    todo = journal.remaining(plan)

    default_embodiment = policy.embodiment
    policy.embodiment = embodiment
    t0 = time.perf_counter()
    try:
        policy.reset()  # each episode's noise is seeded by its own seed (embodia.policy.executor)
        if todo:
            n_envs = min(cfg.num_envs, len(todo))
            _run_with_progress(policy, spec, todo, factory, n_envs, cfg.execution, out, in_process, show_progress,
                               journal.append)  # fmt: skip
    finally:
        policy.embodiment = default_embodiment
    seconds = time.perf_counter() - t0
    result = eval_result(out, spec, journal.episodes(), seconds, str(policy.checkpoint_hash))
    atomic_write_text(result.results_path, json.dumps(results_json(result, settings), indent=2) + "\n")
    build_report(result, settings).save(result.report_path)
    return result


def eval_run_dir(cfg: EvalConfig, command: str = "eval") -> Path:
    """The evaluation's folder: `cfg.resume` (an earlier run to continue), else `cfg.out_dir` or a new run
    folder; a fresh run never mixes into a folder whose journal holds an earlier evaluation."""
    resume = cfg.resume
    if resume is None:
        out = (
            Path(cfg.out_dir)
            if cfg.out_dir is not None
            else new_run_dir(command, cfg.suite.replace(":", "-"))
        )
        if (out / JOURNAL).exists():
            raise ValueError(f"{out} holds an evaluation already: --resume {out}, or choose another --out")
        return out
    if cfg.out_dir is not None and Path(cfg.out_dir).resolve() != Path(resume).resolve():
        raise ValueError(f"--resume {resume} continues that folder: leave out --out {cfg.out_dir}")
    if not Path(resume).is_dir():
        raise ValueError(f"--resume {resume}: no such run folder")
    return Path(resume)


def eval_settings(
    policy, cfg: EvalConfig, spec: Suite, command: str, k: int, embodiment: str, given_plan: bool
) -> dict:
    """What results.json and the manifest record about an evaluation's settings."""
    execution = cfg.execution
    return {
        "command": command,
        "suite": cfg.suite,
        "kind": spec.kind,
        "split": spec.split,
        "episodes_per_task": None if given_plan else cfg.episodes,
        "num_envs": cfg.num_envs,
        "replan_every": k,
        "join": execution.join,
        "ensemble": execution.ensemble,
        "delay": execution.delay,
        "chunk_size": int(policy.chunk_size),
        "n_action_steps": int(policy.n_action_steps),
        "image_size": cfg.image_size,
        "max_steps": cfg.max_steps,
        "seed": cfg.seed,
        "seed_base": None if given_plan else EVAL_SEED_BASE,
        "embodiment": embodiment,
        "checkpoint_hash": str(policy.checkpoint_hash),
        "policy_class": f"{type(policy).__module__}.{type(policy).__qualname__}",
        "task_files": task_files_record(),
        **_sampler_settings(policy),
    }


def eval_result(
    out: Path, spec: Suite, episodes: list[EpisodeResult], seconds: float, checkpoint_hash: str
) -> EvalResult:
    tasks = summarise(episodes, key=lambda e: e.task)
    return EvalResult(
        out_dir=out,
        results_path=out / "results.json",
        report_path=out / "report.html",
        suite=spec,
        overall=Rate.of(sum(e.success for e in episodes), len(episodes)),
        mean_task_rate=mean_rate(tasks.values()),
        groups=summarise(episodes, key=lambda e: e.group),
        tasks=tasks,
        episodes=episodes,
        seconds=seconds,
        checkpoint_hash=checkpoint_hash,
        templates=summarise(episodes, key=_template_of) if spec.kind == "tabletop" else {},
        failures=count_failures(episodes),
        measures=measure_medians(episodes),
    )


def _with_settings(cfg: EvalConfig, suite: str | None, settings: dict[str, Any]) -> EvalConfig:
    """`cfg` with `evaluate()`'s keyword overrides: EvalConfig fields, or ExecutionConfig fields
    (replan_every=, join=, ensemble=, delay=) for its `execution`."""
    names = {f.name for f in fields(ExecutionConfig)}
    execution = {k: settings.pop(k) for k in list(settings) if k in names}
    if execution:
        settings["execution"] = replace(settings.get("execution", cfg.execution), **execution)
    return replace(cfg, **({"suite": suite} if suite is not None else {}), **settings)


def _sampler_settings(policy: ChunkPolicy) -> dict[str, Any]:
    """A local flow policy's sampler (steps, temperature): they change its success, so results record them."""
    described = getattr(policy, "settings", None)  # a policy that says what it runs as (LeRobotPolicy)
    if isinstance(described, dict):
        return dict(described)
    cfg = getattr(policy, "cfg", None)
    if getattr(cfg, "head", None) != "flow":
        return {}
    return {"flow_steps": int(cfg.flow_steps), "flow_noise_scale": float(cfg.flow_noise_scale)}


def count_failures(episodes: list[EpisodeResult]) -> dict[str, dict[str, int]]:
    """Failed episodes per task by label, labels in pipeline order (reach before grasp before carry);
    tasks whose env reports no labels are left out."""
    from embodia.sim.progress import FAILURE_LABELS

    order = {label: i for i, label in enumerate(FAILURE_LABELS)}
    out: dict[str, dict[str, int]] = {}
    for e in episodes:
        if e.failure is not None:
            counts = out.setdefault(e.task, {})
            counts[e.failure] = counts.get(e.failure, 0) + 1
    return {
        task: dict(sorted(c.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
        for task, c in out.items()
    }


def measure_medians(episodes: list[EpisodeResult]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """Per task and kind of measure ("grasp", "push"), for the episodes that succeeded and those that
    failed: how many were measured and the median of each measure. Failed grasps far off where the
    successful ones are close say the approach is imprecise, not the grip."""
    out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for task in dict.fromkeys(e.task for e in episodes):
        mine = [e for e in episodes if e.task == task]
        for kind in dict.fromkeys(k for e in mine for k in e.measures):
            for outcome, success in (("succeeded", True), ("failed", False)):
                rows = [e.measures[kind] for e in mine if e.success == success and kind in e.measures]
                if not rows:
                    continue
                med: dict[str, float] = {"episodes": len(rows)}
                for key in dict.fromkeys(k for r in rows for k in r):
                    med[key] = round(float(statistics.median(r[key] for r in rows if key in r)), 2)
                out.setdefault(task, {}).setdefault(kind, {})[outcome] = med
    return out


def _template_of(episode: EpisodeResult) -> str:
    from embodia.sim.tasks import parse_instruction

    try:
        task = parse_instruction(episode.instruction)
    except ValueError:  # an env that phrases tasks its own way
        return "(other phrasings)"
    return f"{task.family} ({task.split}): {task.template_text}"


def suite_embodiment(policy: ChunkPolicy, spec: Suite) -> str:
    """The embodiment to evaluate as: the policy's own, or, for a policy that serves several (an
    `embodiments` collection, as a cross-embodiment checkpoint has), the first one the suite runs.
    `evaluate` switches `policy.embodiment` to it for the run and restores it afterwards."""
    if policy.embodiment in spec.embodiments:
        return policy.embodiment
    served = getattr(policy, "embodiments", None) or ()
    for name in spec.embodiments:
        if name in served:
            return name
    return policy.embodiment  # env_factory names the mismatch


def _run_with_progress(
    policy: ChunkPolicy,
    spec: Suite,
    plan: list[EpisodeSpec],
    factory: Callable[[], gym.Env],
    n_envs: int,
    execution: ExecutionConfig,
    out: Path,
    in_process: bool,
    show_progress: bool,
    on_done: Callable[[EpisodeResult], Any],
) -> list[EpisodeResult]:
    progress = Progress(
        TextColumn("eval {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} ep/s"),
        TextColumn("success {task.fields[succ]}"),
        TimeRemainingColumn(),
        disable=not show_progress,
    )
    bar = progress.add_task(spec.spec, total=len(plan), rate="-", succ="-")
    t0 = time.perf_counter()
    done: list[EpisodeResult] = []

    def on_episode(ep: EpisodeResult) -> None:
        on_done(ep)
        done.append(ep)
        wins = sum(e.success for e in done)
        rate = len(done) / max(time.perf_counter() - t0, 1e-9)
        progress.update(bar, advance=1, rate=f"{rate:.2f}", succ=f"{wins}/{len(done)}")

    with progress, VectorRunner([factory] * n_envs, in_process=in_process) as runner:
        return run_rollouts(
            policy,
            runner,
            plan,
            execution=execution,
            camera_key=spec.camera_key,
            fps=spec.fps,
            video_dir=out / "videos",
            on_episode=on_episode,
        )


def results_json(result: EvalResult, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        **settings,
        "overall": result.overall.to_dict(),
        "mean_task_success_rate": result.mean_task_rate,
        "groups": {g: r.to_dict() for g, r in result.groups.items()},
        "tasks": {
            t.name: result.tasks[t.name].to_dict() | {"group": t.group}
            for t in result.suite.tasks
            if t.name in result.tasks
        },
        "templates": {t: r.to_dict() for t, r in sorted(result.templates.items())},
        "failures": result.failures,
        "measures": result.measures,
        "episodes": [e.to_dict(relative_to=result.out_dir) for e in result.episodes],
        "seconds": round(result.seconds, 3),
        "provenance": {
            "git_sha": git_sha(),
            "versions": package_versions(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }


def _pct(rate: Rate) -> str:
    return "n/a" if rate.rate is None else f"{rate.rate:.1%}"


def _ci(rate: Rate) -> str:
    return f"{rate.ci_low:.1%} – {rate.ci_high:.1%}"


def _rate_rows(rates: dict[str, Rate]) -> list[list[Any]]:
    return [[name, r.successes, r.n, _pct(r), _ci(r)] for name, r in rates.items()]


def build_report(result: EvalResult, settings: dict[str, Any]) -> Report:
    """The HTML report of one evaluation (see embodia.report.html)."""
    from embodia.report.html import Report

    cols = ["", "successes", "episodes", "success", "95 % CI (Wilson)"]
    split = f", {settings['split']} instructions" if settings.get("split") else ""
    guided = {"guided": ", each re-plan guided by the previous chunk's rest", "blend": ", each new chunk "
              "cross-faded into the previous one"}.get(settings.get("join"), "")  # fmt: skip
    if settings.get("delay"):
        guided += f", each chunk requested {settings['delay']} ticks before it runs"
    if settings.get("ensemble") is not None:
        guided = f", overlapping chunks temporally ensembled (coefficient {settings['ensemble']})"
    rep = Report(
        f"embodia {settings.get('command', 'eval')}: {result.suite.spec}{split}",
        subtitle=f"checkpoint {result.checkpoint_hash}",
    )
    mean = "" if result.mean_task_rate is None else f" Mean of per-task rates: {result.mean_task_rate:.1%}."
    rep.paragraph(
        f"{result.overall.n} episodes ("
        + (
            f"{settings['episodes_per_task']} per task"
            if settings["episodes_per_task"]
            else "seeds as planned"
        )
        + "), "
        f"success {result.overall}.{mean} Re-planning every {settings['replan_every']} of "
        f"{settings['chunk_size']} predicted actions{guided}; {result.seconds:.0f} s."
    )
    rep.heading("Summary")
    overall = {"overall": result.overall}
    groups = result.groups if list(result.groups) != list(result.tasks) else {}
    rep.table(_rate_rows(overall | groups), columns=cols)
    rep.heading("Per task")
    rep.figure(_task_chart(result), caption="success rate per task, bars: Wilson 95 % interval")
    task_rows = [
        [t.name, t.group, *_rate_rows({t.name: result.tasks[t.name]})[0][1:]]
        for t in result.suite.tasks
        if t.name in result.tasks
    ]
    rep.table(task_rows, columns=["task", "group", *cols[1:]])
    if result.templates:
        rep.heading("Per instruction template")
        rep.paragraph(
            "A template far below its family's rate is a phrasing the policy does not ground (the language "
            "wall), not a motor failure: compare it with the family's other templates."
        )
        rep.table(_rate_rows(dict(sorted(result.templates.items()))), columns=["template", *cols[1:]])
    if result.failures:
        from embodia.sim.progress import FAILURE_GUIDE, FAILURE_LABELS, MEASURE_GUIDE

        rep.heading("Why episodes failed")
        rep.paragraph(
            f"Where each failed episode stopped, from the simulator's state (embodia.sim.progress). {FAILURE_GUIDE}"
        )
        if result.measures:
            rep.paragraph(MEASURE_GUIDE)
        rep.table(failure_rows(result), columns=["task", "failed", "where they stopped", MEASURE_COLUMN])
        seen = {label for counts in result.failures.values() for label in counts}
        rep.key_values({label: meaning for label, meaning in FAILURE_LABELS.items() if label in seen})
    filmed = [e for e in result.episodes if e.video is not None]
    if filmed:
        rep.heading("Videos")
        rep.paragraph(f"Camera {result.suite.camera_key}; the first episodes of each task.")
        for e in filmed:
            outcome = "success" if e.success else f"failure ({e.failure})" if e.failure else "failure"
            rep.video(
                e.video.relative_to(result.out_dir).as_posix(),
                caption=f'"{e.instruction}" — seed {e.seed}, {outcome} after {e.steps} steps',
            )
    rep.heading("Settings")
    rep.key_values({k: v for k, v in settings.items() if v is not None})
    rep.heading("Episodes")
    rep.table(
        [
            [e.task, e.instruction, e.seed, e.success, e.failure or "", e.steps, e.chunks]
            for e in result.episodes
        ],
        columns=["task", "instruction", "seed", "success", "failure", "steps", "chunks"],
    )
    return rep


MEASURE_COLUMN = "how far off (medians)"


def failure_rows(result: EvalResult) -> list[list[Any]]:
    """[task, failed episodes, "missed grasp 12, wrong block 3, ...", measure medians] per task with
    labelled failures."""
    return [
        [
            task,
            sum(counts.values()),
            ", ".join(f"{label} {n}" for label, n in counts.items()),
            measure_text(result.measures.get(task, {})),
        ]
        for task, counts in result.failures.items()
    ]


def _task_chart(result: EvalResult):
    from embodia.report.html import new_figure

    names = [t.name for t in result.suite.tasks if t.name in result.tasks]
    rates = [result.tasks[n] for n in names]
    fig = new_figure(7.0, max(1.6, 0.28 * len(names) + 0.8))
    ax = fig.add_subplot()
    y = list(range(len(names)))
    values = [r.rate or 0.0 for r in rates]
    err = [
        [v - r.ci_low for v, r in zip(values, rates, strict=True)],
        [r.ci_high - v for v, r in zip(values, rates, strict=True)],
    ]
    ax.barh(y, values, xerr=err, color="#4c78a8", ecolor="#333", capsize=3)
    ax.set_yticks(y, names)
    ax.invert_yaxis()  # the suite's first task on top, as in the table
    ax.set_xlim(0, 1)
    ax.set_xlabel("success rate")
    ax.grid(axis="x", alpha=0.3)
    return fig


def summary_table(result: EvalResult) -> Table:
    """A rich table for the terminal: per task, then per group and overall."""
    table = Table(title=f"eval {result.suite.spec}: {result.overall.n} episodes in {result.seconds:.0f} s")
    for col in ("task", "group", "success", "95 % CI", "n"):
        table.add_column(col, justify="left" if col in ("task", "group") else "right")
    for t in result.suite.tasks:
        r = result.tasks.get(t.name)
        if r is not None:
            table.add_row(t.name, t.group, _pct(r), _ci(r), str(r.n))
    if list(result.groups) != list(result.tasks):
        table.add_section()
        for g, r in result.groups.items():
            table.add_row("", g, _pct(r), _ci(r), str(r.n))
    if result.templates:
        table.add_section()
        for name, r in sorted(result.templates.items()):
            table.add_row(f"[dim]{escape(name)}[/]", "template", _pct(r), _ci(r), str(r.n))
    table.add_section()
    table.add_row(
        "[bold]overall[/]", "", f"[bold]{_pct(result.overall)}[/]", _ci(result.overall), str(result.overall.n)
    )
    return table


def failure_table(result: EvalResult) -> Table | None:
    """Where the failed episodes stopped, per task (None when the env reports nothing)."""
    if not result.failures:
        return None
    table = Table(title="why episodes failed (embodia.sim.progress)")
    table.add_column("task")
    table.add_column("failed", justify="right")
    table.add_column("where they stopped")
    table.add_column(MEASURE_COLUMN)
    for task, failed, where, measured in failure_rows(result):
        table.add_row(escape(task), str(failed), escape(where), escape(measured))
    return table
