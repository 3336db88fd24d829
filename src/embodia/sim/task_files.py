"""Task families defined in a user's own Python file, registered beside the built-in ones.

    # my_tasks.py
    from embodia.tasks import TaskFamily

    def left_of(state, task):        # the red block ends >= 5 cm to the robot's left of the blue one
        a, b = state.block_pos[task.color], state.block_pos[task.other]
        return a[1] - b[1] >= 0.05 and abs(a[0] - b[0]) < 0.05

    LEFT_OF = TaskFamily("left_of", train_templates=("put the {color} block left of the {other} block",),
                         heldout_templates=("set the {color} cube beside the {other} cube on its left",),
                         max_steps=300, success="...", predicate=left_of, hold_ticks=5)

    embodia tasks --tasks my_tasks.py

`load_task_file(path)` runs the file once per process (a second load of the same file is a no-op) and
registers every `TaskFamily` it defines at module level into `FAMILIES`, after trying each predicate on a
scene at rest; every failure (a syntax error, an exception, a name clash, a predicate that raises or
returns no truth value) is a `TaskFileError` naming the file and the line. `loaded_task_files()` gives
each file's path and sha256, for the metadata of datasets, checkpoints and run manifests.
"""

from __future__ import annotations

import hashlib
import sys
import traceback
import types
from pathlib import Path

import numpy as np

from embodia.sim.tasks import FAMILIES, SceneState, TaskFamily, sample_task

_LOADED: dict[Path, dict] = {}  # resolved path -> {"path", "sha256", "families"}


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file and the line."""


def loaded_task_files() -> list[dict]:
    """[{"path", "sha256", "families", "resolved"}] of every task file loaded in this process, in load order
    ("path" as given, "resolved" absolute: what worker processes load)."""
    return [dict(v) | {"resolved": str(k)} for k, v in _LOADED.items()]


def task_files_record() -> list[dict]:
    """What metadata and manifests keep of the loaded task files: path as given, sha256, families."""
    return [{k: f[k] for k in ("path", "sha256", "families")} for f in loaded_task_files()]


def load_task_file(path: str | Path) -> list[str]:
    """Run `path` and register its task families; returns their names."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"{path}: no such task file")
    resolved = path.resolve()
    source = resolved.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    if resolved in _LOADED:
        if _LOADED[resolved]["sha256"] != digest:
            raise TaskFileError(
                f"{path}: changed since it was loaded in this process; restart to load it again"
            )
        return list(_LOADED[resolved]["families"])
    module = _run(resolved, source)
    found = [v for v in vars(module).values() if isinstance(v, TaskFamily)]
    if not found:
        raise TaskFileError(f"{path}: defines no TaskFamily at module level (see `embodia tasks --help`)")
    names = []
    for fam in found:
        if fam.name in FAMILIES and FAMILIES[fam.name] is not fam:
            raise TaskFileError(
                f"{path}: task family {fam.name!r} already exists (built in, or another file's)"
            )
        _try_predicate(resolved, fam)
        names.append(fam.name)
    for fam in found:
        FAMILIES[fam.name] = fam
    _LOADED[resolved] = {"path": str(path), "sha256": digest, "families": names}
    return names


def _run(path: Path, source: bytes) -> types.ModuleType:
    name = f"embodia_user_tasks_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise TaskFileError(f"{path}, line {exc.lineno}: {exc.msg}") from None
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        raise TaskFileError(f"{_where(path, exc)}: {type(exc).__name__}: {exc}") from None
    return module


def _where(path: Path, exc: BaseException) -> str:
    """'FILE, line N' of the deepest frame of the traceback inside the task file."""
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f"{path}, line {lines[-1]}" if lines else str(path)


def _try_predicate(path: Path, fam: TaskFamily) -> None:
    """Call the predicate on a scene at rest for one task of the family: it must return a truth value."""
    registered = fam.name in FAMILIES
    FAMILIES[fam.name] = fam  # for the moment: sampling a task looks its family up
    try:
        task = sample_task(np.random.default_rng(0), fam.name, "train")
    finally:
        if not registered:
            del FAMILIES[fam.name]
    try:
        out = fam.predicate(resting_scene(fam), task)
        bool(out)
    except Exception as exc:
        raise TaskFileError(f"{_where(path, exc)}: the success predicate of {fam.name!r} failed on a scene at rest "
                            f"({type(exc).__name__}: {exc})") from None  # fmt: skip
    if not isinstance(out, bool | np.bool_):
        raise TaskFileError(
            f"{path}: the success predicate of {fam.name!r} returned {type(out).__name__}, not a bool"
        )


def resting_scene(family: TaskFamily | None = None) -> SceneState:
    """A scene state with every block at rest on the table in a row, the bowl beside them, and the
    family's objects at the middle of their regions with their joints at the start of their ranges."""
    from embodia.sim.scene import BLOCK_HALF, BOWL_RADIUS, BOWL_WALL_HEIGHT
    from embodia.sim.tasks import COLORS

    pos = {c: np.array([0.15 + 0.04 * i, -0.05, BLOCK_HALF]) for i, c in enumerate(COLORS)}
    bodies: dict[str, np.ndarray] = {}
    joints: dict[str, float] = {}
    for o in family.objects if family is not None else ():
        middle = np.array([np.mean(o.region[0]), np.mean(o.region[1]), 0.0])
        names, joint_names = o.names()
        bodies |= {n: middle.copy() for n in [o.name, *names]}
        joints |= {j: float(o.joints.get(j, (0.0, 0.0))[0]) for j in joint_names}
    return SceneState(
        block_pos=pos, block_vel={c: np.zeros(3) for c in COLORS}, block_start={c: p.copy() for c, p in pos.items()},
        gripper_contact=dict.fromkeys(COLORS, False), tool_pos=np.array([0.15, 0.0, 0.15]),
        bowl_pos=np.array([0.2, 0.1, 0.0]), table_z=0.0, block_half=BLOCK_HALF, bowl_inner_radius=BOWL_RADIUS,
        bowl_rim_z=BOWL_WALL_HEIGHT, gripper_joint=0.0, bodies=bodies, body_start=dict(bodies), joints=joints,
        joint_start=dict(joints),
    )  # fmt: skip


def task_sources() -> tuple[tuple[str, str], ...]:
    """(file name, text) of every task file loaded in this process, in load order: what a worker on
    another machine (a Ray actor) needs to load them, the driver's disk not being its own."""
    return tuple((Path(f["resolved"]).name, Path(f["resolved"]).read_text()) for f in loaded_task_files())


def load_task_sources(sources: tuple[tuple[str, str], ...], folder: Path) -> None:
    """Write each (file name, text) of `task_sources()` into its own folder under `folder` and load it."""
    for i, (name, text) in enumerate(sources):
        path = Path(folder) / f"tasks{i}" / Path(name).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        load_task_file(path)
