"""Language task families of the SO-101 tabletop suite.

Each family has instruction templates split into *train* and *held-out* sets. Every held-out template
uses a verb and a noun that no train template of the same family uses, so evaluating on held-out
templates measures paraphrase generalisation rather than memorised strings.

Success is decided by numeric predicates on the physics state (see `SuccessCheck`), never by the
expert. Directions are the robot's: "front" is away from the base (+x), "back" towards it, "left" is
the robot's left (+y), "right" its right. (Seen through the `front` camera, which faces the robot,
the robot's left appears on the right of the image.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embodia.sim.objects import SceneObject

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.12, 0.65, 0.20, 1.0),
    "blue": (0.10, 0.30, 0.90, 1.0),
    "purple": (0.55, 0.15, 0.70, 1.0),
}
DIRECTIONS: dict[str, tuple[float, float]] = {
    "front": (1.0, 0.0),
    "back": (-1.0, 0.0),
    "left": (0.0, 1.0),
    "right": (0.0, -1.0),
}


@dataclass(frozen=True)
class Slot:
    """A placeholder of instruction templates ({color}) and the words it takes. `distinct_from`: slots
    whose value this one must differ from ("stack the {color} block on the {other} block")."""

    name: str
    values: tuple[str, ...]
    distinct_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ValueError(f"slot name {self.name!r}: use lowercase letters, digits and _")
        if not self.values or any(not re.fullmatch(r"[a-z0-9_-]+", v) for v in self.values):
            raise ValueError(
                f"slot {self.name!r}: values must be single lowercase words, got {self.values!r}"
            )


# The slots of the built-in families; a user family may name its own (`Slot("side", ("left", "right"))`).
COLOR = Slot("color", tuple(COLORS))
OTHER = Slot("other", tuple(COLORS), distinct_from=("color",))
DIRECTION = Slot("direction", tuple(DIRECTIONS))
BUILTIN_SLOTS = {s.name: s for s in (COLOR, OTHER, DIRECTION)}

# predicate(scene state, task) -> whether the goal holds at this tick
Predicate = Callable[["SceneState", "TaskInstance"], bool]


@dataclass(frozen=True)
class TaskFamily:
    """A family of tasks: instruction templates with slots, split into train and held-out phrasings, and
    a success predicate over the scene state that must hold `hold_ticks` ticks in a row."""

    name: str
    train_templates: tuple[str, ...]
    heldout_templates: tuple[str, ...]
    max_steps: int  # step limit at 30 Hz
    success: str  # the physics predicate, in words (docs and error messages)
    # Extra phrasings used only to augment training instructions (`embodia train --paraphrase`), never to
    # record or evaluate. They share no word with any held-out template (a test checks), so held-out
    # success still measures phrasings the policy has never seen.
    augment_templates: tuple[str, ...] = ()
    predicate: Predicate | None = None
    hold_ticks: int = 1
    slot_defs: tuple[Slot, ...] = ()  # slots beyond the built-in ones (color, other, direction)
    # expert(kit, task) -> the segments of a scripted demonstration; `kit` is the tabletop's expert
    # (embodia.sim.experts.TabletopExpert: grasp, lift, carry_and_release, push, touch, move, gripper,
    # hold, with `env` and a seeded `rng`). None: demonstrated by hand only.
    expert: Callable[[Any, TaskInstance], list] | None = None
    objects: tuple[SceneObject, ...] = ()  # what the family adds to the tabletop (embodia.sim.objects)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.name):
            raise ValueError(f"task family name {self.name!r}: use lowercase letters, digits and _")
        if not self.train_templates or not self.heldout_templates:
            raise ValueError(f"task family {self.name!r} needs train and held-out templates")
        if not callable(self.predicate):
            raise ValueError(
                f"task family {self.name!r} needs a success predicate (a function of state, task)"
            )
        if self.max_steps < 1 or self.hold_ticks < 1:
            raise ValueError(f"task family {self.name!r}: max_steps and hold_ticks must be >= 1")
        known = {s.name: s for s in self.slot_defs} | {k: v for k, v in BUILTIN_SLOTS.items() if k not in
                                                       {s.name for s in self.slot_defs}}  # fmt: skip
        for tpl in self.train_templates + self.heldout_templates + self.augment_templates:
            used = tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", tpl)))
            if set(used) != set(self.slots):
                raise ValueError(f"task family {self.name!r}: template {tpl!r} uses slots {list(used)}, the first "
                                 f"train template {list(self.slots)}: every template takes the same slots")  # fmt: skip
            missing = [u for u in used if u not in known]
            if missing:
                raise ValueError(
                    f"task family {self.name!r}: template {tpl!r} uses undefined slot(s) {missing}"
                )

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", self.train_templates[0])))

    def slot(self, name: str) -> Slot:
        for s in self.slot_defs:
            if s.name == name:
                return s
        return BUILTIN_SLOTS[name]

    def templates(self, split: str) -> tuple[str, ...]:
        if split == "train":
            return self.train_templates
        if split == "heldout":
            return self.heldout_templates
        if split == "all":
            return self.train_templates + self.heldout_templates
        raise ValueError(f"unknown template split {split!r}; valid: ['train', 'heldout', 'all']")


# ------------------------------------------------------------------------------ success predicates
# Each built-in family's predicate (the `success` text of its family says the same in words).
def _lifted(s: SceneState, t: TaskInstance) -> bool:
    return bool(s.block_pos[t.color][2] - s.block_start[t.color][2] >= 0.05)


def _in_bowl(s: SceneState, t: TaskInstance) -> bool:
    p, v = s.block_pos[t.color], s.block_vel[t.color]
    inside = np.linalg.norm(p[:2] - s.bowl_pos[:2]) < s.bowl_inner_radius and p[2] < s.bowl_rim_z
    return bool(inside and np.linalg.norm(v) < 0.02 and not s.gripper_contact[t.color])


def _pushed(s: SceneState, t: TaskInstance) -> bool:
    p, p0 = s.block_pos[t.color], s.block_start[t.color]
    d = p[:2] - p0[:2]
    dist = float(np.linalg.norm(d))
    if dist < 0.08 or p[2] > p0[2] + 0.01:
        return False
    cos = float(np.dot(d / dist, np.asarray(DIRECTIONS[t.direction])))
    return cos >= np.cos(np.radians(45))


def _stacked(s: SceneState, t: TaskInstance) -> bool:
    p, q, v = s.block_pos[t.color], s.block_pos[t.other], s.block_vel[t.color]
    on_top = np.linalg.norm(p[:2] - q[:2]) < 0.012 and abs(p[2] - q[2] - 2 * s.block_half) < 0.006
    still = np.linalg.norm(v) < 0.02
    return bool(
        on_top and still and not s.gripper_contact[t.color] and q[2] < s.table_z + s.block_half + 0.005
    )


def _touched(s: SceneState, t: TaskInstance) -> bool:
    p, p0 = s.block_pos[t.color], s.block_start[t.color]
    return bool(np.linalg.norm(s.tool_pos - p) < 0.03 and np.linalg.norm(p[:2] - p0[:2]) < 0.03)


# ------------------------------------------------------------------------------ scripted experts
# Each built-in family's expert, written against the kit (embodia.sim.experts.TabletopExpert).
def _pick_expert(kit, t: TaskInstance) -> list:
    return kit.grasp(t.color) + [kit.lift(0.09 + kit.rng.uniform(0, 0.03), 25)] + [kit.hold(40)]


def _place_expert(kit, t: TaskInstance) -> list:
    return kit.grasp(t.color) + kit.carry_and_release(t.color, lambda: kit.env.bowl_position(), drop_z=0.055)


def _push_expert(kit, t: TaskInstance) -> list:
    return kit.push(t.color, np.asarray(DIRECTIONS[t.direction]))


def _stack_expert(kit, t: TaskInstance) -> list:
    where = lambda: kit.env.block_position(t.other)  # noqa: E731
    return kit.grasp(t.color) + kit.carry_and_release(t.color, where, drop_z=None, other=t.other)


def _touch_expert(kit, t: TaskInstance) -> list:
    return kit.touch(t.color)


FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in [
        TaskFamily(
            "pick",
            train_templates=(
                "pick up the {color} block",
                "lift the {color} block",
                "grab the {color} block and lift it",
                "pick the {color} block up off the table",
            ),
            heldout_templates=("raise the {color} cube", "hoist the {color} cube into the air"),
            max_steps=200,
            success="the block's centre is >= 5 cm above where it rested, for >= 0.5 s (15 ticks)",
            augment_templates=(
                "take the {color} block up from the table",
                "grasp the {color} block and bring it up",
                "get the {color} block off the table",
                "elevate the {color} block",
                "please lift up the {color} block",
                "pick up the {color} brick",
                "could you pick the {color} block up",
                "grip the {color} block and hold it up high",
            ),
            predicate=_lifted,
            expert=_pick_expert,
            hold_ticks=15,
        ),
        TaskFamily(
            "place",
            train_templates=(
                "put the {color} block in the bowl",
                "place the {color} block into the bowl",
                "move the {color} block to the bowl",
                "drop the {color} block in the bowl",
            ),
            heldout_templates=(
                "deposit the {color} cube inside the dish",
                "lower the {color} cube into the dish",
            ),
            max_steps=300,
            success="the block's centre is inside the bowl's inner radius and below its rim, resting "
            "(speed < 2 cm/s) and released (no gripper contact), for 5 ticks",
            augment_templates=(
                "set the {color} block in the bowl",
                "put the {color} brick into the bowl",
                "transfer the {color} block to the bowl",
                "please drop the {color} block into the bowl",
                "bring the {color} block to the bowl and let go",
                "the {color} block goes in the bowl",
            ),
            predicate=_in_bowl,
            expert=_place_expert,
            hold_ticks=5,
        ),
        TaskFamily(
            "push",
            train_templates=(
                "push the {color} block to the {direction}",
                "slide the {color} block to the {direction}",
                "shove the {color} block {direction}wards",
                "nudge the {color} block towards the {direction}",
            ),
            heldout_templates=(
                "propel the {color} cube to the {direction}",
                "drive the {color} cube to the {direction}",
            ),
            max_steps=250,
            success="the block moved >= 8 cm on the table, within 45 degrees of the named direction",
            augment_templates=(
                "move the {color} block to the {direction} by pushing it",
                "knock the {color} block to the {direction}",
                "push the {color} brick towards the {direction}",
                "slide the {color} block {direction}wards along the table",
                "please push the {color} block {direction}",
                "sweep the {color} block to the {direction} side",
                "send the {color} block to the {direction}",
                "give the {color} block a push to the {direction}",
            ),
            predicate=_pushed,
            expert=_push_expert,
            hold_ticks=1,
        ),
        TaskFamily(
            "stack",
            train_templates=(
                "stack the {color} block on the {other} block",
                "put the {color} block on top of the {other} block",
                "place the {color} block onto the {other} block",
                "set the {color} block on the {other} block",
            ),
            heldout_templates=(
                "pile the {color} cube atop the {other} cube",
                "balance the {color} cube over the {other} cube",
            ),
            max_steps=300,
            success="the block rests on the other block (centres within 1.2 cm horizontally, one block "
            "height apart vertically), released and still, for 5 ticks",
            augment_templates=(
                "lay the {color} block on the {other} block",
                "put the {color} brick on the {other} brick",
                "rest the {color} block on top of the {other} one",
                "position the {color} block onto the {other} block",
                "please stack the {color} block on the {other} one",
                "build a tower: the {color} block on the {other} block",
                "move the {color} block onto the {other} block",
                "lift the {color} block and set it down on the {other} block",
            ),
            predicate=_stacked,
            expert=_stack_expert,
            hold_ticks=5,
        ),
        TaskFamily(
            "touch",
            train_templates=(
                "touch the {color} block",
                "point at the {color} block",
                "reach for the {color} block",
                "go to the {color} block",
            ),
            heldout_templates=("tap the {color} cube", "poke the {color} cube with the gripper"),
            max_steps=150,
            success="the gripper's tool point is within 3 cm of the block's centre for >= 0.5 s (15 ticks) "
            "and the block moved < 3 cm",
            augment_templates=(
                "reach out to the {color} block",
                "move to the {color} block",
                "touch the {color} brick",
                "approach the {color} block",
                "please go to the {color} block",
                "get close to the {color} block",
                "bring the fingers to the {color} block",
                "put your tip on the {color} block",
            ),
            predicate=_touched,
            expert=_touch_expert,
            hold_ticks=15,
        ),
    ]
}


@dataclass(frozen=True)
class TaskInstance:
    """One task: a family, its slots' values and the template that phrases it."""

    family: str
    color: str | None = None
    other: str | None = None  # second block (stack)
    direction: str | None = None  # push
    template: int = 0  # index into the family's templates of `split`
    split: str = "train"
    extra: tuple[tuple[str, str], ...] = ()  # the values of a family's own slots, (name, value) pairs

    @property
    def values(self) -> dict[str, str]:
        """Every slot's value ({"color": "red", ...}), the family's own slots included."""
        builtin = {"color": self.color, "other": self.other, "direction": self.direction}
        return {k: v for k, v in builtin.items() if v is not None} | dict(self.extra)

    @property
    def template_text(self) -> str:
        """The instruction template this task was phrased with, placeholders kept ("tap the {color} cube")."""
        return FAMILIES[self.family].templates(self.split)[self.template]

    @property
    def instruction(self) -> str:
        return self.template_text.format(**self.values)

    @property
    def colors_needed(self) -> tuple[str, ...]:
        return tuple(c for c in (self.color, self.other) if c is not None)


_PLURAL = {"task family": "task families"}
_KIND = {"other": "color"}  # the word an error uses for a slot's values


def _check_choice(kind: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {kind} {value!r}; valid {_PLURAL.get(kind, kind + 's')}: {sorted(valid)}")


def make_task(family: str, color: str | None = None, other: str | None = None, direction: str | None = None,
              template: int = 0, split: str = "train", **extra: str) -> TaskInstance:  # fmt: skip
    """Validated constructor; errors list the valid values. A family's own slots come as keywords."""
    _check_choice("task family", family, FAMILIES)
    fam = FAMILIES[family]
    given = {
        k: v
        for k, v in {"color": color, "other": other, "direction": direction, **extra}.items()
        if v is not None
    }
    for name in given:
        if name not in fam.slots:
            raise ValueError(
                f"task family {family!r} takes no {name}" + (" (a second color)" if name == "other" else "")
            )
    for name in fam.slots:
        slot = fam.slot(name)
        _check_choice(_KIND.get(name, name), given.get(name), slot.values)
        for d in slot.distinct_from:
            if given[name] == given.get(d):
                raise ValueError(
                    f"{family} needs two different {_KIND.get(name, name)}s, got {given[name]!r} twice"
                )
    n = len(fam.templates(split))
    if not 0 <= template < n:
        raise ValueError(f"template index {template} out of range for {family!r} ({split}: {n} templates)")
    own = tuple(
        (k, v) for k, v in given.items() if k not in BUILTIN_SLOTS or fam.slot(k) is not BUILTIN_SLOTS[k]
    )
    builtin = {k: given.get(k) for k in ("color", "other", "direction") if k not in dict(own)}
    return TaskInstance(family, builtin.get("color"), builtin.get("other"), builtin.get("direction"), template, split,
                        own)  # fmt: skip


def sample_task(rng: np.random.Generator, family: str, split: str = "train") -> TaskInstance:
    """Each slot drawn uniformly from its values (in template order, a slot's `distinct_from` excluded),
    then a template of `split`."""
    _check_choice("task family", family, FAMILIES)
    fam = FAMILIES[family]
    values: dict[str, str] = {}
    for name in fam.slots:
        slot = fam.slot(name)
        taken = {values[d] for d in slot.distinct_from if d in values}
        values[name] = str(rng.choice([v for v in slot.values if v not in taken]))
    template = int(rng.integers(len(fam.templates(split))))
    return make_task(family, template=template, split=split, **values)


# Words people wrap around a command that say nothing about the task ("please ...", "... now"). With
# `carriers=True` every phrasing is also trained inside them, so the policy sees each task in many
# sentence contexts. MiniLM's token states are contextual: a word the policy has never seen (a held-out
# verb) changes the state of every token beside it, and context variety teaches the policy to read the
# task through that change rather than key on one exact sentence. Like the augment templates, these share
# no word with any held-out template (a test checks), and none of them names a task, object or direction.
CARRIER_PREFIXES = ("", "please ", "now ", "robot, ", "next, ", "can you ")
CARRIER_SUFFIXES = ("", " please", " now", " for me", " carefully")


def paraphrases(text: str, carriers: bool = False) -> list[str]:
    """Other phrasings of the same task for training-time augmentation: the family's train templates and
    its augment templates, filled with the task's slots (the text itself excluded), and with `carriers`
    each of those wrapped in every carrier prefix and suffix too. Held-out templates are never among
    them. Text that is not a tabletop instruction has none (an empty list), so other datasets train on
    their instructions unchanged."""
    try:
        task = parse_instruction(text)
    except ValueError:
        return []
    fam = FAMILIES[task.family]
    slots = {"color": task.color, "other": task.other, "direction": task.direction}
    alts = [t.format(**slots) for t in fam.train_templates + fam.augment_templates]
    if carriers:
        alts = [f"{pre}{a}{suf}" for a in alts for pre in CARRIER_PREFIXES for suf in CARRIER_SUFFIXES]
    return [a for a in dict.fromkeys(alts) if a != text]


def _template_regex(tpl: str) -> re.Pattern:
    pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[\\w-]+)", re.escape(tpl))
    return re.compile(f"^{pattern}$")


def parse_instruction(text: str) -> TaskInstance:
    """Map an instruction written with any known template back to its task. Unknown text -> ValueError
    listing example instructions; a known template with an unknown color/direction -> the valid ones."""
    norm = " ".join(str(text).lower().strip().rstrip(".!").split())
    for fam in FAMILIES.values():
        for split in ("train", "heldout"):
            for i, tpl in enumerate(fam.templates(split)):
                m = _template_regex(tpl).match(norm)
                if m:
                    return make_task(fam.name, template=i, split=split, **m.groupdict())
    examples = [f.templates("train")[0] for f in FAMILIES.values()]
    raise ValueError(
        f"unknown task {text!r}. Task families: {sorted(FAMILIES)}; e.g. "
        + "; ".join(repr(e) for e in examples)
        + f". Colors: {sorted(COLORS)}; directions: {sorted(DIRECTIONS)}."
    )


# ------------------------------------------------------------------------------ success predicates
@dataclass
class SceneState:
    """What the predicates read, filled from MuJoCo each control tick."""

    block_pos: dict[str, np.ndarray]
    block_vel: dict[str, np.ndarray]
    block_start: dict[str, np.ndarray]
    gripper_contact: dict[str, bool]  # block colour -> touching any gripper/jaw geom
    tool_pos: np.ndarray
    bowl_pos: np.ndarray
    table_z: float
    block_half: float
    bowl_inner_radius: float
    bowl_rim_z: float
    gripper_joint: float | None = None  # the gripper's joint position, radians (None: not known)
    # Yaw of each block and of the jaws' closing axis, radians (None: not known), for how well a grasp
    # lines up with the block's faces.
    block_yaw: dict[str, float] | None = None
    jaw_yaw: float | None = None
    # The task families' scene objects (embodia.sim.objects): every named body's position (an object's
    # own name: its origin) and every hinge or slide joint's value, now and when the episode started.
    bodies: dict[str, np.ndarray] = field(default_factory=dict)
    body_start: dict[str, np.ndarray] = field(default_factory=dict)
    joints: dict[str, float] = field(default_factory=dict)
    joint_start: dict[str, float] = field(default_factory=dict)


class SuccessCheck:
    """Evaluates one task's predicate tick by tick, with its family's hold time."""

    def __init__(self, task: TaskInstance):
        self.task = task
        fam = FAMILIES[task.family]
        self.hold, self._predicate = fam.hold_ticks, fam.predicate
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def update(self, s: SceneState) -> bool:
        self.count = self.count + 1 if self._predicate(s, self.task) else 0
        return self.count >= self.hold
