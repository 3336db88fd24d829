"""Objects a task family adds to the tabletop: the user's MJCF (articulated or not) or a primitive box,
placed at random in a region each episode.

    DRAWER = SceneObject("drawer", mjcf=Path(__file__).with_name("drawer.xml"), region=((0.22, 0.26), (-0.08, 0.08)),
                         yaw=(-0.3, 0.3), footprint=0.09)
    CRATE = SceneObject.box("crate", half_size=(0.03, 0.03, 0.02), rgba=(0.8, 0.6, 0.2, 1), mass=0.05)

`mjcf` is either the XML of the object's bodies (one or more `<body>` elements, their geoms, joints and
sites; no `<mujoco>` around them) or the path of an MJCF file, whose `<asset>` entries (meshes, textures;
file paths taken relative to that file) and `<worldbody>` bodies are used. A fixed object (the default)
hangs from a body the tabletop moves to its sampled pose each episode; its own joints (a drawer's slide,
a lid's hinge) move freely, start at the values `joints` draws, and are read into the scene state. A
box with a mass is a free body instead, dropped at its pose. Objects of families other than the current
task's are parked out of sight, so they change neither the scene nor the cameras of other tasks.

Meshes render and collide slower than primitives on a CPU; keep them small (a few thousand faces).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PARK = (0.0, 3.0, -0.25)  # out of every camera's view and far from everything that moves
NAME = re.compile(r"[a-z_][a-z0-9_]*")


@dataclass(frozen=True)
class SceneObject:
    name: str
    mjcf: str | Path
    region: tuple[tuple[float, float], tuple[float, float]] = (
        (0.16, 0.26),
        (-0.12, 0.12),
    )  # x, y of its origin
    yaw: tuple[float, float] = (0.0, 0.0)  # radians about z, drawn uniformly
    footprint: float = 0.05  # metres around its origin kept clear of the blocks and the bowl
    # More circles to keep clear, (x, y, radius) in the object's frame: where a part moves to (a drawer's
    # open path) or a footprint a single circle fits badly.
    keep_clear: tuple[tuple[float, float, float], ...] = ()
    joints: dict[str, tuple[float, float]] = field(default_factory=dict)  # initial values, drawn uniformly
    free: bool = False  # a free body (dropped at its pose) rather than a fixed one

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"scene object name {self.name!r}: use lowercase letters, digits and _")
        (x0, x1), (y0, y1) = self.region
        if not (x0 <= x1 and y0 <= y1 and self.yaw[0] <= self.yaw[1] and self.footprint >= 0):
            raise ValueError(
                f"scene object {self.name!r}: region and yaw are (low, high) pairs, footprint >= 0"
            )
        if math.hypot(max(abs(x0), abs(x1)), max(abs(y0), abs(y1))) > 0.45:
            raise ValueError(
                f"scene object {self.name!r}: region {self.region} reaches past the table (0.45 m)"
            )

    @classmethod
    def box(cls, name: str, half_size: tuple[float, float, float], rgba: tuple[float, float, float, float],
            mass: float | None = None, **kwargs) -> SceneObject:  # fmt: skip
        """A box resting on the table: fixed, or free with `mass` kg."""
        hx, hy, hz = half_size
        inertial = f'mass="{mass}"' if mass is not None else ""
        xml = (f'<body name="{name}_box" pos="0 0 {hz}"><geom name="{name}_geom" type="box" size="{hx} {hy} {hz}" '
               f'rgba="{" ".join(map(str, rgba))}" {inertial}/></body>')  # fmt: skip
        return cls(name, xml, free=mass is not None, **kwargs)

    # ------------------------------------------------------------------ MJCF
    def parts(self) -> tuple[list[ET.Element], list[ET.Element]]:
        """(asset elements, body elements) of the object, checked."""
        text, base = self._text()
        try:
            root = ET.fromstring(text)  # a whole MJCF document, or a single <body>
        except ET.ParseError:
            root = None
        if root is None or root.tag not in ("mujoco", "body"):
            try:
                root = ET.fromstring(f"<wrap>{text}</wrap>")  # several <body> elements
            except ET.ParseError as exc:
                raise ValueError(f"scene object {self.name!r}: its MJCF does not parse ({exc})") from None
        elif root.tag == "body":
            root = ET.fromstring(f"<wrap>{text}</wrap>")
        assets = list(root.find("asset")) if root.find("asset") is not None else []
        world = root.find("worldbody") if root.tag == "mujoco" else root
        bodies = [] if world is None else [e for e in world if e.tag == "body"]
        if not bodies:
            raise ValueError(f"scene object {self.name!r}: its MJCF has no <body>")
        for a in assets:
            if "file" in a.attrib and base is not None:
                a.set("file", str((base / a.attrib["file"]).resolve()))
        if self.free and (len(bodies) != 1 or bodies[0].find("joint") is not None):
            raise ValueError(
                f"scene object {self.name!r}: a free object is one body without joints of its own"
            )
        return assets, bodies

    def names(self) -> tuple[list[str], list[str]]:
        """(named bodies, named hinge or slide joints) of its MJCF, read without compiling it."""
        _, bodies = self.parts()
        found = [e for b in bodies for e in b.iter()]
        body_names = [e.get("name") for e in found if e.tag == "body" and e.get("name")]
        joints = [e.get("name") for e in found if e.tag == "joint" and e.get("name")
                  and e.get("type", "hinge") in ("hinge", "slide")]  # fmt: skip
        return body_names, joints

    def _text(self) -> tuple[str, Path | None]:
        if isinstance(self.mjcf, Path) or (isinstance(self.mjcf, str) and self.mjcf.endswith(".xml")
                                            and "<" not in self.mjcf):  # fmt: skip
            path = Path(self.mjcf)
            if not path.is_file():
                raise ValueError(f"scene object {self.name!r}: no MJCF file {path}")
            return path.read_text(), path.parent
        return str(self.mjcf), None

    def xml(self) -> tuple[str, str]:
        """(asset XML, worldbody XML) for the tabletop's MJCF, the object parked."""
        assets, bodies = self.parts()
        inner = "".join(ET.tostring(b, encoding="unicode") for b in bodies)
        x, y, z = PARK
        if self.free:
            body = bodies[0]
            body.set("name", f"obj_{self.name}")
            body.set("pos", f"{x} {y} {z}")
            body.insert(0, ET.Element("freejoint", {"name": f"obj_{self.name}"}))
            world = ET.tostring(body, encoding="unicode")
        else:
            world = f'<body name="obj_{self.name}" mocap="true" pos="{x} {y} {z}">{inner}</body>'
        return "".join(ET.tostring(a, encoding="unicode") for a in assets), world


class PlacedObjects:
    """The families' objects inside one compiled tabletop model: placing them each episode (the current
    task's in their regions, every other one parked) and reading their bodies and joints."""

    def __init__(self, model, objects: list[SceneObject]):
        import mujoco

        self.objects = {o.name: o for o in objects}
        self.root = {n: model.body(f"obj_{n}").id for n in self.objects}
        self.mocap = {n: int(model.body_mocapid[b]) for n, b in self.root.items() if not self.objects[n].free}
        self.free_adr = {
            n: int(model.jnt_qposadr[model.joint(f"obj_{n}").id]) for n, o in self.objects.items() if o.free
        }
        self.free_dof = {
            n: int(model.jnt_dofadr[model.joint(f"obj_{n}").id]) for n, o in self.objects.items() if o.free
        }
        self.rest_z = {n: _rest_z(o) for n, o in self.objects.items() if o.free}
        roots = set(self.root.values())
        self.bodies: dict[
            str, int
        ] = {}  # every named body of every object, and each object's root by its name
        for b in range(model.nbody):
            top = b
            while top and top not in roots:
                top = int(model.body_parentid[top])
            if top in roots and b != top and model.body(b).name:
                self.bodies[model.body(b).name] = b
        self.bodies.update({n: b for n, b in self.root.items()})
        self.joints: dict[str, int] = {}  # hinge and slide joints inside the objects: name -> qpos address
        for j in range(model.njnt):
            if model.jnt_type[j] in (mujoco.mjtJoint.mjJNT_SLIDE, mujoco.mjtJoint.mjJNT_HINGE):
                owner = int(model.jnt_bodyid[j])
                if owner in self.bodies.values() and model.joint(j).name:
                    self.joints[model.joint(j).name] = int(model.jnt_qposadr[j])

    def park_all(self, data) -> None:
        for i, n in enumerate(self.objects):  # side by side: parked free objects must not pile up
            self._set_pose(data, n, (PARK[0] + 0.4 * i, PARK[1]), PARK[2], 0.0)
        for adr in self.joints.values():
            data.qpos[adr] = 0.0

    def place(self, data, rng, names: list[str]) -> list[tuple[np.ndarray, float]]:
        """Sample a pose for each named object (in its region, clear of those placed before it) and its
        joints' start values; returns (xy, footprint) of each, for the blocks and bowl to keep clear of."""
        placed: list[tuple[np.ndarray, float]] = []
        for n in names:
            o = self.objects[n]
            for _ in range(200):
                xy = np.array([rng.uniform(*o.region[0]), rng.uniform(*o.region[1])])
                if all(np.linalg.norm(xy - q) >= o.footprint + r for q, r in placed):  # another object's
                    break
            else:
                raise RuntimeError(f"no room for scene object {n!r} beside the others: shrink the footprints")
            yaw = rng.uniform(*o.yaw)
            self._set_pose(data, n, xy, self.rest_z.get(n, 0.0), yaw)
            for joint, (lo, hi) in sorted(o.joints.items()):
                if joint not in self.joints:
                    raise ValueError(f"scene object {n!r}: no hinge or slide joint {joint!r} in its MJCF")
                data.qpos[self.joints[joint]] = rng.uniform(lo, hi)
            placed.append((xy, o.footprint))
            rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
            placed += [(xy + rot @ np.array([cx, cy]), r) for cx, cy, r in o.keep_clear]
        return placed

    def _set_pose(self, data, n: str, xy, z: float, yaw: float) -> None:
        quat = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        if n in self.mocap:
            data.mocap_pos[self.mocap[n]] = [xy[0], xy[1], z]
            data.mocap_quat[self.mocap[n]] = quat
        else:
            adr, dof = self.free_adr[n], self.free_dof[n]
            data.qpos[adr : adr + 7] = [xy[0], xy[1], z + 0.0005, *quat]
            data.qvel[dof : dof + 6] = 0.0

    def positions(self, data) -> dict[str, np.ndarray]:
        return {name: data.xpos[b].copy() for name, b in self.bodies.items()}

    def joint_values(self, data) -> dict[str, float]:
        return {name: float(data.qpos[adr]) for name, adr in self.joints.items()}


def _rest_z(o: SceneObject) -> float:
    pos = o.parts()[1][0].get("pos", "0 0 0").split()
    return float(pos[2]) if len(pos) == 3 else 0.0


def check_unique(objects: list[SceneObject]) -> list[SceneObject]:
    """The objects of several families, one per name (the same object may serve several families)."""
    seen: dict[str, SceneObject] = {}
    for o in objects:
        if o.name in seen and seen[o.name] != o:
            raise ValueError(f"two different scene objects are named {o.name!r}")
        seen[o.name] = o
    return list(seen.values())
