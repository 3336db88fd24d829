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


pytestmark = pytest.mark.usefixtures(
    "task_registry"
)  # each test leaves the built-in families as it found them


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
    assert "no such task file" in " ".join(capsys.readouterr().out.split())  # rich wraps long paths


def test_the_docs_example_is_a_working_task_file(tmp_path):
    """docs/tasks.md's example, as written, loads and judges a scene."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "tasks.md").read_text()
    code = doc.split("```python\n", 1)[1].split("```", 1)[0]
    assert load_task_file(write(tmp_path, code, "from_docs.py")) == ["left_of"]
    task = parse_instruction("put the red block left of the blue block")
    state = task_files.resting_scene()
    state.block_pos["red"] = state.block_pos["blue"] + np.array([0.0, 0.06, 0.0])
    assert FAMILIES["left_of"].predicate(state, task) is True


def test_objects_a_free_box_and_a_mesh_asset(tmp_path):
    """A free box is dropped in its region and moves like a block; an MJCF file's mesh asset is found
    relative to that file; both are parked for the built-in families' tasks."""
    from embodia.sim.objects import PARK
    from embodia.sim.tabletop import TabletopEnv

    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "wedge.obj").write_text(
        "v 0 0 0\nv 0.04 0 0\nv 0 0.04 0\nv 0 0 0.03\nf 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
    )
    (tmp_path / "wedge.xml").write_text(
        '<mujoco><asset><mesh name="wedge" file="assets/wedge.obj"/></asset><worldbody>'
        '<body name="wedge_body"><geom type="mesh" mesh="wedge" rgba="0.2 0.7 0.7 1"/></body></worldbody></mujoco>'
    )
    load_task_file(
        write(
            tmp_path,
            """\
        from pathlib import Path
        from embodia.tasks import SceneObject, TaskFamily

        CRATE = SceneObject.box("crate", half_size=(0.02, 0.02, 0.015), rgba=(0.8, 0.6, 0.2, 1), mass=0.05,
                                region=((0.2, 0.22), (-0.1, -0.08)), footprint=0.04)
        WEDGE = SceneObject("wedge", mjcf=Path(__file__).with_name("wedge.xml"), region=((0.26, 0.27), (0.1, 0.11)),
                            footprint=0.04)
        NUDGE = TaskFamily("nudge", train_templates=("nudge the crate",), heldout_templates=("shift the box",),
                           max_steps=30, success="the crate moved 5 cm",
                           predicate=lambda s, t: bool(abs(s.bodies["crate"][0] - s.body_start["crate"][0]) > 0.05),
                           objects=(CRATE, WEDGE))
        """,
        )
    )
    env = TabletopEnv(render=True, image_size=64)
    try:
        obs, _ = env.reset(seed=0, options={"family": "nudge"})
        crate, wedge = env.object_position("crate"), env.object_position("wedge")
        assert 0.2 <= crate[0] <= 0.22 and abs(crate[2] - 0.015) < 0.003  # dropped and resting on the table
        assert 0.26 <= wedge[0] <= 0.27 and wedge[2] == 0.0
        assert obs["observation.images.front"].shape == (64, 64, 3)
        assert env.step(obs["observation.state"])[-1]["success"] is False
        env.reset(seed=0, options={"family": "touch"})
        assert env.object_position("wedge")[1] == PARK[1] and env.object_position("crate")[1] > 2.0
    finally:
        env.close()
    with pytest.raises(ValueError, match="no MJCF file"):
        from embodia.sim.objects import SceneObject

        SceneObject("ghost", mjcf=tmp_path / "nope.xml").parts()
