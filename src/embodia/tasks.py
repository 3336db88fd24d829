"""The public task API: define task families in your own file and give it to any command (`--tasks FILE`).

    from embodia.tasks import TaskFamily, Slot

    def left_of(state, task):
        a, b = state.block_pos[task.color], state.block_pos[task.other]
        return a[1] - b[1] >= 0.05 and abs(a[0] - b[0]) < 0.05

    LEFT_OF = TaskFamily(
        "left_of",
        train_templates=("put the {color} block left of the {other} block",),
        heldout_templates=("set the {color} cube beside the {other} cube on its left",),
        max_steps=300, success="the block rests >= 5 cm to the robot's left of the other", predicate=left_of,
        hold_ticks=5,
    )

A family is instruction templates with slots (`{color}`, `{other}`, `{direction}`, or your own `Slot`), split
into train and held-out phrasings, and a success predicate over the scene state (`SceneState`: block
positions, velocities and start positions, gripper contacts, the tool point, the bowl) that must hold
`hold_ticks` ticks in a row. The built-in families (`embodia tasks`) are defined the same way in
`embodia.sim.tasks`. See docs/tasks.md.
"""

from __future__ import annotations

from embodia.robots.so101 import PAN_AXIS_XY
from embodia.sim.objects import SceneObject
from embodia.sim.scene import BLOCK_HALF
from embodia.sim.task_files import TaskFileError, load_task_file, loaded_task_files, task_files_record
from embodia.sim.tasks import (
    COLOR,
    COLORS,
    DIRECTION,
    DIRECTIONS,
    FAMILIES,
    OTHER,
    SceneState,
    Slot,
    TaskFamily,
    TaskInstance,
    make_task,
    parse_instruction,
    sample_task,
)

__all__ = [
    "BLOCK_HALF", "PAN_AXIS_XY", "COLOR", "COLORS", "DIRECTION", "DIRECTIONS", "FAMILIES", "OTHER", "SceneObject", "SceneState", "Slot", "TaskFamily",
    "TaskFileError", "TaskInstance", "load_task_file", "loaded_task_files", "make_task", "parse_instruction",
    "sample_task", "task_files_record",
]  # fmt: skip
