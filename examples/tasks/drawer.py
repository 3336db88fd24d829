"""An articulated task family for embodia: open a drawer (its own MJCF, drawer.xml, beside this file).

    embodia tasks --tasks examples/tasks/drawer.py
    embodia record open_drawer --tasks examples/tasks/drawer.py --episodes 20

The drawer (a tray sliding out of a sleeve towards the robot, 0 to 9 cm) is placed in front of the arm
each episode, turned up to 15 degrees either way; the blocks and the bowl keep clear of it. Success is
read from its slide joint. The expert hooks the closed fingertips behind the tray's handle and pulls.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embodia.tasks import SceneObject, TaskFamily

OPEN_AT = 0.06  # metres out of 0.09

DRAWER = SceneObject(
    "drawer",
    mjcf=Path(__file__).with_name("drawer.xml"),
    region=((0.245, 0.265), (-0.05, 0.05)),
    yaw=(-0.26, 0.26),
    footprint=0.1,
    keep_clear=((-0.12, 0.035, 0.045), (-0.12, -0.035, 0.045)),  # the open tray's path, towards the robot
)


def opened(state, task) -> bool:
    """The tray is out by >= 6 cm."""
    return state.joints["drawer_slide"] >= OPEN_AT


def expert(kit, task) -> list:
    """Closed fingertips down behind the handle (over the tray), pull it 10 cm towards the robot (the tray stops at 9), lift off."""
    env = kit.env

    def behind(dz: float, pull: float = 0.0):
        def at() -> np.ndarray:
            out = -env.object_rotation("drawer")[:, 0]  # the direction the tray slides out
            handle = env.object_position("drawer_handle")
            return handle - 0.02 * out + pull * out + np.array([0.0, 0.0, dz])

        return at

    return [
        kit.move(behind(0.05), kit.CLOSED, ticks=(20, 28), tip=True),
        kit.move(behind(-0.007), None, ticks=(12, 16), tip=True),
        kit.move(behind(-0.007, pull=0.1), None, ticks=(40, 50), tip=True),
        kit.lift(0.11, 14),
        kit.hold(20),
    ]


OPEN_DRAWER = TaskFamily(
    "open_drawer",
    train_templates=("open the drawer", "pull the drawer open", "slide the drawer out"),
    heldout_templates=("extend the tray outwards", "haul out the tray"),
    # Training-time augmentation only: no word of the held-out templates ("tray", "extend", "haul").
    augment_templates=(
        "open up the drawer",
        "pull out the drawer",
        "slide the drawer open",
        "tug the drawer open",
        "get the drawer open",
        "pull the handle to open the drawer",
    ),
    max_steps=250,
    success=f"the drawer's tray is out by >= {OPEN_AT * 100:.0f} cm (of 9) for 5 ticks",
    predicate=opened,
    hold_ticks=5,
    expert=expert,
    objects=(DRAWER,),
)
