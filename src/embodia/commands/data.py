"""Commands about data: `record`, `dataset ...`, `doctor data`, `tasks`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from embodia.commands.arm import FollowerArm
from embodia.commands.common import console
from embodia.configs import nested, opt, task_files
from embodia.data.record import RecordConfig


@dataclass(frozen=True)
class TeleopRecording:
    """`embodia record --robot so101`: human demonstrations through the leader arm."""

    robot: str = opt("sim", "who demonstrates: 'sim' (scripted experts in simulation) or 'so101' (a person "
                     "with the leader arm)", choices=("sim", "so101"))  # fmt: skip
    arm: FollowerArm = nested(FollowerArm, "the follower arm (--robot so101)")
    leader: str | None = opt(None, "the leader's serial port (--robot so101)")
    task: str | None = opt(None, "the instruction every demonstration carries out (--robot so101)")
    leader_id: str = opt("so101_leader", "the leader's name (calibration <id>.json)")
    episode_s: float = opt(30.0, "longest episode, seconds (ENTER ends one earlier)")
    reset_s: float = opt(10.0, "reset period between episodes, seconds (ENTER ends it earlier)")


@dataclass(frozen=True)
class RecordOptions:
    record: RecordConfig = nested(RecordConfig, "recording")
    teleop: TeleopRecording = nested(TeleopRecording, "human demonstrations (--robot so101)")
    out: str | None = opt(None, "dataset folder (default: ./embodia_runs/record/<time>-<tasks>/dataset)")
    resume: bool = opt(False, "append to the dataset at --out (fresh seeds; never the same scene twice)")


def cmd_record(o: RecordOptions) -> int:
    """Record scripted-expert demonstrations as a LeRobotDataset v3.0."""
    from embodia.configs import to_dict
    from embodia.data.record import record
    from embodia.runs import new_run_dir, stop_on_sigterm, write_manifest

    cfg = o.record
    if o.resume and o.out is None:
        raise ValueError("--resume needs --out pointing at the dataset to continue")
    if o.teleop.robot == "so101":
        return _record_teleop(o)
    if cfg.ray is not None:
        from embodia.cluster import import_ray

        import_ray()  # without the extra: a clear error before any folder is written
    run_dir = new_run_dir("record", cfg.tasks.replace(":", "-").replace(",", "-"))
    root = Path(o.out) if o.out else run_dir / "dataset"
    write_manifest(run_dir, "record", to_dict(cfg) | {"out": str(root), "resume": o.resume}, seeds=[cfg.seed])
    try:
        with stop_on_sigterm():
            res = record(cfg, root, resume=o.resume)
    except KeyboardInterrupt:
        from embodia.data.format import INFO_PATH, read_json

        n = read_json(root / INFO_PATH)["total_episodes"] if (root / INFO_PATH).exists() else 0
        console.print(f"stopped: {n} episodes committed in {root}; continue with --resume --out {root}")
        return 130
    table = Table(title=f"recorded {res.saved} episodes ({res.frames} frames) in {res.seconds:.0f} s")
    for col in ("task", "kept", "attempted"):
        table.add_column(col)
    for task, (kept, tried) in sorted(res.per_task.items()):
        table.add_row(task, str(kept), str(tried))
    console.print(table)
    console.print(
        f"expert success {res.successes}/{res.attempted}; {res.attempted / max(res.seconds, 1e-9):.2f} episodes/s. "
        f"Dataset: [bold]{root}[/]; manifest: {run_dir / 'manifest.json'}"
    )
    return 0


def _record_teleop(o: RecordOptions) -> int:
    """Human demonstrations: the leader drives the follower and every tick is recorded."""
    from embodia.configs import to_dict
    from embodia.data.record_teleop import TeleopRecordConfig, TerminalControls, record_teleop
    from embodia.robots.so101_arm import ArmConfig, SO101Leader
    from embodia.runs import new_run_dir, stop_on_sigterm, write_manifest

    t = o.teleop
    if t.arm.follower is None or t.leader is None or not (t.task or "").strip():
        raise ValueError('--robot so101 needs --follower PORT (or sim), --leader PORT and --task "..."')
    cfg = TeleopRecordConfig(task=t.task, episodes=o.record.episodes, episode_s=t.episode_s, reset_s=t.reset_s,
                             image_size=o.record.image_size)  # fmt: skip
    follower = t.arm.build(cfg.image_size)
    leader = SO101Leader(ArmConfig(port=t.leader, id=t.leader_id, calibration_dir=t.arm.calibration_dir))
    run_dir = new_run_dir("record", "so101-" + t.task[:40])
    root = Path(o.out) if o.out else run_dir / "dataset"
    write_manifest(
        run_dir, "record", to_dict(cfg) | {"out": str(root), "follower": t.arm.follower, "leader": t.leader}
    )
    with stop_on_sigterm(), leader, follower:  # an exception: the follower goes to rest, then torque off
        res = record_teleop(
            leader, follower, root, cfg, TerminalControls(), resume=o.resume, say=console.print
        )
        if hasattr(follower, "go_to_rest"):
            follower.go_to_rest()
    console.print(f"recorded {res.saved} episodes ({res.frames} frames; {res.trimmed} idle frames trimmed, "
                  f"{res.rerecorded} re-recorded) in [bold]{root}[/]")  # fmt: skip
    t_ = res.timing
    console.print(f"timing: {t_['ticks']} ticks, lateness p50 {t_['lateness_ms_p50']:.1f} ms, "
                  f"p99 {t_['lateness_ms_p99']:.1f} ms, {t_['ticks_missed']} missed")  # fmt: skip
    return 0


# ------------------------------------------------------------------------------ embodia dataset ...
@dataclass(frozen=True)
class InfoOptions:
    root: str = opt(help="dataset folder", positional=True)
    json: bool = opt(False, "print the summary as JSON")
    verify: bool = opt(
        False,
        "read every parquet file in full and decode every video frame, checking row and frame counts "
        "against the metadata; exit 1 on any problem (without it only the metadata is read)",
    )


def cmd_dataset_info(o: InfoOptions) -> int:
    """Summary of a dataset; with --verify, a full read that reports every corrupt or inconsistent file."""
    import json

    from embodia.data import edit
    from embodia.data.format import DatasetError
    from embodia.hub import resolve_folder

    # A Hub id is pulled first (a failed pull is an error, exit 2); a root that is not there is an error
    # too, not a problem found reading.
    root = str(resolve_folder(o.root, "dataset") or o.root)
    problems = _verify_dataset(root, quiet=o.json) if o.verify and Path(root).is_dir() else None
    try:
        summary = edit.info(root)
    except DatasetError:
        if not problems:
            raise
        summary = None  # the metadata itself is broken: the problems say how
    if o.json:
        out = summary or {"root": o.root}
        out |= {"verified": o.verify, "problems": [str(p) for p in problems or []]}
        print(json.dumps(out, indent=2))
        return 1 if problems else 0
    if summary is not None:
        table = Table(title=f"{summary['root']} (LeRobotDataset {summary['version']})")
        table.add_column("field")
        table.add_column("value", overflow="fold")
        for key in ("robot_type", "fps", "episodes", "frames", "seconds", "episode_length", "cameras"):
            table.add_row(key, str(summary[key]))
        for task, n in summary["tasks"].items():
            table.add_row("task", f"{task!r}: {n} episodes")
        console.print(table)
    if problems is None:
        console.print(
            "not verified: only the metadata was read, not the data files or videos in full; "
            "pass --verify to read every parquet file and decode every video frame"
        )
    elif problems:
        console.print(f"[red]{len(problems)} problem(s)[/] found reading every file:")
        for p in problems:
            console.print(f"  {p}", markup=False, highlight=False, soft_wrap=True)  # paths stay whole
    else:
        console.print("verified: every parquet file read in full and every video frame decoded; no problems")
    return 1 if problems else 0


def _verify_dataset(root: str, quiet: bool) -> list:
    from embodia.data.verify import verify

    if quiet:
        return verify(root)
    with console.status("verifying ...") as status:
        return verify(root, progress=lambda path: status.update(f"verifying: reading {path}"))


@dataclass(frozen=True)
class DeleteOptions:
    root: str = opt(help="dataset folder", positional=True)
    episodes: list[int] = opt(help="episode indices to leave out", nargs="+", parse=int)
    out: str = opt(help="folder of the new dataset")


def cmd_dataset_delete(o: DeleteOptions) -> int:
    """Copy a dataset without the given episodes."""
    from embodia.data import edit

    console.print(f"written: [bold]{edit.delete_episodes(o.root, o.episodes, o.out)}[/]")
    return 0


@dataclass(frozen=True)
class SplitOptions:
    root: str = opt(help="dataset folder", positional=True)
    fractions: str = opt(help="name=fraction pairs, e.g. train=0.9,val=0.1")
    out: str = opt(help="folder that receives one dataset per name")
    seed: int = opt(0, "seed of the shuffle")


def cmd_dataset_split(o: SplitOptions) -> int:
    """Shuffle episodes into named datasets, e.g. --fractions train=0.9,val=0.1."""
    from embodia.data import edit

    fractions = {}
    for part in o.fractions.split(","):
        name, _, value = part.partition("=")
        try:
            fractions[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--fractions must look like 'train=0.9,val=0.1', got {o.fractions!r}") from None
    for name, path in edit.split(o.root, fractions, o.out, seed=o.seed).items():
        console.print(f"{name}: {path}")
    return 0


@dataclass(frozen=True)
class MergeOptions:
    roots: list[str] = opt(help="dataset folders", positional=True, nargs="+")
    out: str = opt(help="folder of the merged dataset")


def cmd_dataset_merge(o: MergeOptions) -> int:
    """Concatenate datasets with the same features and fps."""
    from embodia.data import edit

    console.print(f"written: [bold]{edit.merge(o.roots, o.out)}[/]")
    return 0


@dataclass(frozen=True)
class StatsOptions:
    root: str = opt(help="dataset folder", positional=True)
    out: str | None = opt(None, "write a corrected copy here")
    in_place: bool = opt(False, "rewrite meta/stats.json of ROOT itself")

    def __post_init__(self) -> None:
        if (self.out is None) == (not self.in_place):
            raise ValueError("give exactly one of --out (a corrected copy) and --in-place")


def cmd_dataset_stats(o: StatsOptions) -> int:
    """Recompute meta/stats.json from the data."""
    from embodia.data import edit

    console.print(f"written: [bold]{edit.recompute_stats(o.root, None if o.in_place else o.out)}[/]")
    return 0


# ------------------------------------------------------------------------------ embodia doctor data
@dataclass(frozen=True)
class DoctorDataOptions:
    dataset: str = opt(help="dataset folder (v3.0 or v2.1)", positional=True)
    out: str | None = opt(None, "report folder (default ./embodia_runs/doctor/<time>-data)")
    fix: str | None = opt(
        None, "write a copy without FAIL episodes and with idle ends trimmed", metavar="OUT"
    )
    no_video: bool = opt(False, "skip decoding (camera checks are skipped)")
    action_kind: str | None = opt(
        None, "override the inferred action kind", choices=("joint_abs", "ee_delta")
    )


def cmd_doctor_data(o: DoctorDataOptions) -> int:
    """Check a LeRobotDataset for data bugs; writes doctor.json and report.html. Exit status: 0 when no
    check FAILs (WARN allowed), 1 when any check FAILs or the dataset cannot be opened, 2 on bad
    arguments."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from embodia.data.doctor import diagnose, write_fixed
    from embodia.data.doctor_report import summary_table
    from embodia.data.format import DatasetError
    from embodia.runs import new_run_dir, write_manifest

    if o.fix and Path(o.fix).resolve() == Path(o.dataset).resolve():
        raise ValueError("--fix must name a new folder; the input dataset is never modified")
    run_dir = Path(o.out) if o.out else new_run_dir("doctor", "data")
    write_manifest(run_dir, "doctor data", {"dataset": o.dataset, "video": not o.no_video,
                                             "action_kind": o.action_kind, "fix": o.fix})  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            diag = diagnose(o.dataset, video=not o.no_video, action_kind=o.action_kind, progress=progress)
    except DatasetError as exc:  # unreadable metadata: the worst finding there is
        console.print(f"[bold red]FAIL[/] cannot open the dataset: {exc}")
        return 1
    console.print(summary_table(diag))
    paths = diag.write(run_dir)
    console.print(f"report: [bold]{paths['html']}[/]; JSON: {paths['json']}")
    if o.fix:
        with Progress(*columns, console=console, transient=True) as progress:
            res = write_fixed(diag, o.fix, progress=progress)
        console.print(
            f"fixed copy: [bold]{res.out}[/] ({len(res.kept)} episodes kept, {len(res.dropped)} dropped, "
            f"{len(res.trimmed)} trimmed)"
            + (f"; not fixable by dropping episodes: {', '.join(res.unfixed)}" if res.unfixed else "")
        )
    return 1 if diag.severity == "FAIL" else 0


@dataclass(frozen=True)
class TasksOptions:
    markdown: bool = opt(False, "print docs/tasks.md (the built-in families)")
    task_files: list[str] = task_files()


def cmd_tasks(o: TasksOptions) -> int:
    """List the tabletop task families (built in, and those of --tasks files), their templates and success."""
    from embodia.sim.catalogue import tasks_markdown
    from embodia.sim.tasks import COLORS, DIRECTIONS, FAMILIES
    from embodia.tasks import load_task_file

    if o.markdown:
        print(tasks_markdown(), end="")
        return 0
    mine = {name: file for file in o.task_files for name in load_task_file(file)}
    table = Table(title="SO-101 tabletop task families" + (f" ({len(mine)} from task files)" if mine else ""))
    for col in ("family", "train templates", "held-out templates", "steps", "success"):
        table.add_column(col, overflow="fold")
    for f in FAMILIES.values():
        name = f"{f.name}\n({mine[f.name]})" if f.name in mine else f.name
        table.add_row(
            name, "\n".join(f.train_templates), "\n".join(f.heldout_templates), str(f.max_steps), f.success
        )
    console.print(table)
    console.print(f"colors: {', '.join(COLORS)}; directions (robot's frame): {', '.join(DIRECTIONS)}")
    return 0


# ------------------------------------------------------------------------ embodia dataset convert-units
@dataclass(frozen=True)
class ConvertUnitsOptions:
    root: str = opt(help="an SO-100/SO-101 dataset recorded by LeRobot", positional=True)
    out: str = opt(help="folder of the new dataset, in embodia's radians")
    source_units: str = opt(
        "auto",
        "LeRobot's convention of ROOT: auto (detected), degrees (LeRobot >= 0.4, so_follower) or "
        "range_m100_100 (LeRobot 0.2-0.3, so101_follower: needs --calibration)",
        flag="from",
        choices=("auto", "degrees", "range_m100_100"),
    )
    calibration: str | None = opt(
        None,
        "LeRobot's calibration JSON of the recording arm "
        "(~/.cache/huggingface/lerobot/calibration/robots/so101_follower/<id>.json): needed for "
        "range_m100_100, and for the gripper's exact span in degrees",
        metavar="FILE",
    )


def cmd_dataset_convert_units(o: ConvertUnitsOptions) -> int:
    """Convert a LeRobot SO-101 dataset (degrees or -100..100) into embodia's radians, as a new dataset."""
    from embodia.data.units import convert

    res = convert(o.root, o.out, o.source_units, o.calibration)
    console.print(f"detected: {res.convention.describe()}")
    for note in res.notes:
        console.print(f"[yellow]note[/]: {note}")
    console.print(
        f"converted from {res.used} ({res.episodes} episodes, {res.frames} frames; gripper from the "
        f"{res.gripper}): [bold]{res.out}[/]"
    )
    return 0
