"""The public task API: a task family defined in a file of the user's, loaded with `--tasks FILE`; its
instructions parse and sample like the built-in ones, the tabletop judges it with its predicate, and a
broken file is an error naming the file and the line."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from embodia.cli import main
from embodia.sim import task_files
from embodia.sim.tasks import FAMILIES, SuccessCheck, make_task, parse_instruction, sample_task
from embodia.tasks import TaskFileError, load_task_file, loaded_task_files

LEFT_OF = """\
from embodia.tasks import TaskFamily


def left_of(state, task):
    a, b = state.block_pos[task.color], state.block_pos[task.other]
    return bool(a[1] - b[1] >= 0.05 and abs(a[0] - b[0]) < 0.05)


LEFT_OF = TaskFamily(
    "left_of",
    train_templates=("put the {color} block left of the {other} block", "move the {color} block to the left of the {other} block"),
    heldout_templates=("set the {color} cube beside the {other} cube on its left",),
    max_steps=300,
    success="the block rests >= 5 cm to the robot's left of the other, level with it",
    predicate=left_of,
    hold_ticks=3,
)
"""


@pytest.fixture(autouse=True)
def registry():
    """Each test starts from the built-in families and leaves them so."""
    families, loaded = dict(FAMILIES), dict(task_files._LOADED)
    yield
    FAMILIES.clear()
    FAMILIES.update(families)
    task_files._LOADED.clear()
    task_files._LOADED.update(loaded)


def write(tmp_path, text: str, name: str = "my_tasks.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_family_from_a_file_parses_samples_and_is_recorded_by_hash(tmp_path):
    path = write(tmp_path, LEFT_OF)
    assert load_task_file(path) == ["left_of"]
    assert load_task_file(path) == ["left_of"]  # a second load is a no-op
    task = parse_instruction("set the red cube beside the blue cube on its left")
    assert (task.family, task.color, task.other, task.split) == ("left_of", "red", "blue", "heldout")
    rng = np.random.default_rng(0)
    for _ in range(20):
        t = sample_task(rng, "left_of")
        assert t.color != t.other and parse_instruction(t.instruction) == t
    with pytest.raises(ValueError, match="two different colors"):
        make_task("left_of", "red", "red")
    (meta,) = loaded_task_files()
    import hashlib

    assert meta == {
        "path": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "families": ["left_of"],
        "resolved": str(path.resolve()),
    }


def test_the_tabletop_judges_a_user_family_by_its_predicate(tmp_path):
    from embodia.sim.tabletop import TabletopEnv

    load_task_file(write(tmp_path, LEFT_OF))
    env = TabletopEnv(render=False)
    try:
        obs, _ = env.reset(seed=3, options={"task": "put the red block left of the blue block"})
        assert env.task.family == "left_of" and env.max_episode_steps == 300
        hold = obs["observation.state"].copy()
        info = env.step(hold)[-1]
        assert info["success"] is False
        # Carry the red block to 8 cm left of the blue one (as a hand would), then let it rest.
        blue = env.block_position("blue")
        adr = env.model.joint("block_red").qposadr[0]
        env.data.qpos[adr : adr + 3] = [blue[0], blue[1] + 0.08, blue[2]]
        env.data.qvel[env.model.joint("block_red").dofadr[0] : env.model.joint("block_red").dofadr[0] + 6] = 0
        results = [env.step(hold)[-1]["success"] for _ in range(5)]
    finally:
        env.close()
    assert results[:2] == [False, False] and results[2:] == [True, True, True]  # hold_ticks = 3


def test_an_own_slot(tmp_path):
    load_task_file(
        write(
            tmp_path,
            """\
        from embodia.tasks import Slot, TaskFamily

        SIDE = Slot("side", ("left", "right"))
        WAVE = TaskFamily("wave", train_templates=("wave to the {side}",), heldout_templates=("greet the {side}",),
                          max_steps=60, success="never", predicate=lambda state, task: False, slot_defs=(SIDE,))
        """,
        )
    )
    task = parse_instruction("greet the right")
    assert (task.family, task.values, task.colors_needed) == ("wave", {"side": "right"}, ())
    check = SuccessCheck(task)
    assert check.hold == 1 and check.update(task_files.resting_scene()) is False
    with pytest.raises(ValueError, match="unknown side 'up'"):
        parse_instruction("wave to the up")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("x = 1\ndef broken(:\n", 2, "invalid syntax"),
        ("import math\nraise RuntimeError('no drawer asset')\n", 2, "RuntimeError: no drawer asset"),
        ("from embodia.tasks import TaskFamily\nF = TaskFamily('f', train_templates=('open it',),\n"
         "    heldout_templates=('unlatch the {color} lid',), max_steps=9, success='', predicate=bool)\n", 2,
         "every template takes the same slots"),
        ("from embodia.tasks import TaskFamily\n\ndef ok(state, task):\n    return state.block_pos['orange'][2] > 0\n"
         "F = TaskFamily('f', train_templates=('lift the {color} block',), heldout_templates=('hoist the {color} cube',),\n"
         "    max_steps=9, success='', predicate=ok)\n", 4, "KeyError: 'orange'"),
    ],
)  # fmt: skip
def test_a_broken_file_names_the_file_and_line(tmp_path, body, line, message):
    path = write(tmp_path, body, "bad.py")
    with pytest.raises(TaskFileError) as err:
        load_task_file(path)
    assert f"{path}, line {line}" in str(err.value) and message in str(err.value)
    assert set(FAMILIES) == {"pick", "place", "push", "stack", "touch"}  # nothing half-registered


def test_what_a_task_file_cannot_do(tmp_path):
    with pytest.raises(TaskFileError, match="no such task file"):
        load_task_file(tmp_path / "missing.py")
    with pytest.raises(TaskFileError, match="defines no TaskFamily"):
        load_task_file(write(tmp_path, "x = 1\n", "empty.py"))
    clash = "from embodia.tasks import TaskFamily\nP = TaskFamily('pick', train_templates=('lift the {color} block',),\n" \
            "    heldout_templates=('hoist the {color} cube',), max_steps=9, success='', predicate=lambda s, t: True)\n"  # fmt: skip
    with pytest.raises(TaskFileError, match="'pick' already exists"):
        load_task_file(write(tmp_path, clash, "clash.py"))
    not_bool = clash.replace("'pick'", "'lifty'").replace("lambda s, t: True", "lambda s, t: 'yes'")
    with pytest.raises(TaskFileError, match="returned str, not a bool"):
        load_task_file(write(tmp_path, not_bool, "not_bool.py"))


def test_embodia_tasks_lists_a_files_families(tmp_path, capsys):
    assert main(["tasks", "--tasks", str(write(tmp_path, LEFT_OF))]) == 0
    out = capsys.readouterr().out
    assert "left_of" in out and "1 from task files" in out
    assert main(["tasks", "--tasks", str(tmp_path / "nope.py")]) == 2
    assert "no such task file" in capsys.readouterr().out
