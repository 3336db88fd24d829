"""MJCF of the SO-101 tabletop: the arm on a table, four coloured blocks, a bowl, two cameras.

Everything is a primitive so that the scene renders fast on a CPU (EGL/Mesa) with shadows and
reflections off. The table top is the plane z = 0 of the robot's base frame.
"""

from __future__ import annotations

import numpy as np

from embodia.robots.so101 import ARM_ACTUATORS_XML, ARM_BODY_XML, ARM_DEFAULTS_XML
from embodia.sim.tasks import COLORS

BLOCK_HALF = 0.0125  # 2.5 cm cubes: the SO-101's jaws open to ~6 cm
BOWL_RADIUS = 0.042  # inner radius of the bowl's wall
BOWL_WALL_HEIGHT = 0.03
BOWL_SEGMENTS = 12
CONTROL_FPS = 30
SUBSTEPS = 16  # physics at 480 Hz
FLOOR_Z = -0.3
PARKED = np.array(
    [0.2, 0.0, FLOOR_Z + BLOCK_HALF]
)  # where an absent block waits: on the floor, under the table


def _bowl_xml() -> str:
    walls = []
    seg_half = BOWL_RADIUS * np.tan(np.pi / BOWL_SEGMENTS) + 0.002
    for i in range(BOWL_SEGMENTS):
        a = 2 * np.pi * i / BOWL_SEGMENTS
        r = BOWL_RADIUS + 0.003
        walls.append(
            f'<geom class="world" type="box" pos="{r * np.cos(a):.5f} {r * np.sin(a):.5f} {BOWL_WALL_HEIGHT / 2:.4f}" '
            f'euler="0 0 {a:.5f}" size="0.003 {seg_half:.5f} {BOWL_WALL_HEIGHT / 2:.4f}" rgba="0.92 0.92 0.95 1"/>'
        )
    return (
        '<body name="bowl" mocap="true" pos="0.2 0.1 0">'
        # The base is drawn as a disc but collides as a thin box: a block resting on a cylinder's flat
        # face chatters (box-cylinder contacts come and go), a box-box contact is steady.
        f'<geom type="cylinder" pos="0 0 0.002" size="{BOWL_RADIUS + 0.006:.4f} 0.002" rgba="0.92 0.92 0.95 1" '
        'contype="0" conaffinity="0"/>'
        f'<geom class="world" type="box" pos="0 0 0.002" size="{BOWL_RADIUS:.4f} {BOWL_RADIUS:.4f} 0.002" rgba="0 0 0 0"/>'
        + "".join(walls)
        + "</body>"
    )


def _blocks_xml() -> str:
    out = []
    for i, (name, rgba) in enumerate(COLORS.items()):
        r, g, b, a = rgba
        out.append(
            f'<body name="block_{name}" pos="{0.15 + 0.04 * i} 0 {BLOCK_HALF}">'
            f'<freejoint name="block_{name}"/>'
            f'<geom name="block_{name}" class="block" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}" '
            f'rgba="{r} {g} {b} {a}"/></body>'
        )
    return "".join(out)


# The scene's extent and centre as MuJoCo computes them for the built-in scene, fixed: the cameras' near
# and far clipping planes scale with the extent, so an object a task file adds (even parked far away)
# would otherwise clip the arm's own parts out of the wrist camera and change every image.
STAT_EXTENT = "1.272949331277565"
STAT_CENTER = "0.19999999999999998 0.0 -0.010000000000000009"


def tabletop_mjcf(image_height: int = 96, image_width: int = 96, objects=()) -> str:
    """The scene's MJCF; `objects` (embodia.sim.objects.SceneObject) are added, parked out of sight."""
    timestep = 1.0 / (CONTROL_FPS * SUBSTEPS)
    parts = [o.xml() for o in objects]
    assets = "".join(a for a, _ in parts)
    bodies = "".join(b for _, b in parts)
    return f"""<mujoco model="embodia_so101_tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep:.6f}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max(image_width, 64)}" offheight="{max(image_height, 64)}"/>
    <quality shadowsize="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  <default>
    {ARM_DEFAULTS_XML}
    <default class="world">
      <geom contype="1" conaffinity="3" friction="0.5 0.01 0.001" group="0"/>
    </default>
    <default class="block">
      <geom contype="1" conaffinity="3" friction="0.6 0.02 0.001" condim="4" mass="0.03" group="0"
            solref="0.004 1" solimp="0.95 0.99 0.001"/>
    </default>
  </default>
  <statistic extent="{STAT_EXTENT}" center="{STAT_CENTER}"/>
  {f"<asset>{assets}</asset>" if assets else ""}
  <worldbody>
    <light name="top" pos="0.2 0 1.0" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <geom name="floor" class="world" type="plane" pos="0 0 {FLOOR_Z}" size="1 1 0.1" rgba="0.3 0.3 0.3 1"/>
    <geom name="table" class="world" type="box" pos="0.2 0 -0.01" size="0.45 0.45 0.01" rgba="0.72 0.62 0.50 1"/>
    <camera name="front" pos="0.5 0.0 0.3" xyaxes="0 1 0 -0.6 0 0.8" fovy="56"/>
    {ARM_BODY_XML}
    {_bowl_xml()}
    {_blocks_xml()}
    {bodies}
  </worldbody>
  <actuator>{ARM_ACTUATORS_XML}</actuator>
</mujoco>"""
