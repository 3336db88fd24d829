"""How far a tabletop episode got: the milestones of its task, and for a failure, one label saying where
it stopped.

A success rate says *that* a policy fails, not *why*. The why decides the fix: a policy that goes to the
wrong block does not ground the instruction (more or more varied language data), one that reaches the
right block and closes on air lacks precision (more demonstrations near the grasp, a tighter camera, a
longer training), one that lifts and drops has a grip problem. The simulator knows where everything is,
so it can tell them apart for free; `embodia eval` counts the labels per task.

Milestones (each recorded at the first tick it holds; distances are from MuJoCo, not from images):

    reached        the tool point came within 3 cm of the named block's centre, or the gripper touched it
    other_reached  ... another block, first (for stack: not counting the block to stack on)
    landed_on      (pick, place, stack) the gripper touched the named block while the tool point was still
                   >= 1.75 cm above its centre, the block not yet lifted: a jaw came down on its top face
    closed_near    (pick, place, stack) the gripper closed while the tool point was within 3 cm of the
                   named block (joint below 0.5 rad: open is 0.6, holding a block 0.25 across its faces and
                   ~0.4 across a diagonal, empty -0.17)
    grasped        the gripper touched the named block while it was >= 1 cm above where it rested
    lifted         (pick) the block was >= 5 cm above where it rested, the success height
    over_goal      (place) the block's centre was over the bowl's inside; (stack) over the other block
                   and above it
    moved          (push, touch) the block slid >= 3 cm from where it rested

Failed episodes get one label, the first of FAILURE_LABELS that applies (their meanings are below).

Measures say how far off an episode was (`summary()["measures"]`, medians per task in `embodia eval`):

    grasp   (pick, place, stack) the first grasp attempt, the first tick the jaw is closing within 5 cm
            of the named block: the tool point's horizontal offset from the block's centre (offset_cm)
            and height above it (height_cm), and the turn of the jaws' closing axis from the block's
            faces (jaw_deg, 0-45). The scripted expert closes 0.2 cm from the centre (never over 0.35)
            with the jaws within 1 degree of square; a policy whose failures are 'landed on block'
            shows ~2 cm and ~30 degrees there, which says what to fix.
    push    (push) where the block ended: how far it slid (slid_cm; success needs 8) and the angle of
            the slide from the named direction (off_deg; success allows 45).
"""

from __future__ import annotations

import numpy as np

from embodia.sim.tasks import DIRECTIONS, SceneState, TaskInstance

REACH_RADIUS = 0.03  # the touch family's success radius
GRASP_LIFT = 0.01
PICK_HEIGHT = 0.05  # the pick family's success height
MOVED = 0.03
# The tool point sits between the fingertips, so touching the block with it this far above the centre
# (the top face is at +1.25 cm) means a jaw rests on the top face. The expert's grasps touch at ~0 cm.
LANDED_ABOVE = 0.0175
# SO-101 gripper joint, radians: below it the jaw is closing or closed. Not lower: a block held across
# its diagonal keeps the joint at ~0.4, and such grasps lift fine.
GRIPPER_CLOSING = 0.5
PUSH_DISTANCE = 0.08  # the push family's success distance
ATTEMPT_RADIUS = 0.05  # a jaw closing this near the named block is a grasp attempt, measured
GRASP_FAMILIES = ("pick", "place", "stack")
BUILTIN_FAMILIES = ("pick", "place", "push", "stack", "touch")  # the families these labels know

# Every label `failure()` can return, in pipeline order (reports list them in this order), and what it
# means. `embodia tasks --markdown` prints this table into docs/tasks.md.
FAILURE_LABELS: dict[str, str] = {
    "wrong block": "never reached the named block, but reached another one",
    "never reached": "never came within 3 cm of any block",
    "landed on block": "a jaw came down on top of the block and it was never grasped: the approach was off "
    "sideways or the jaws were turned (pick, place, stack)",
    "no grasp attempt": "reached the block, never closed the gripper at it (pick, place, stack)",
    "missed grasp": "closed the gripper at the block (tool within 3 cm) but never lifted it (pick, place, stack)",
    "not lifted": "grasped, never reached the 5 cm success height (pick)",
    "dropped": "reached the success height but did not hold it for 0.5 s (pick)",
    "not carried": "grasped, never over the bowl / the other block (place, stack)",
    "not set down": "over the goal, never released there at rest (place, stack)",
    "not pushed": "reached, the block never slid 3 cm (push)",
    "wrong direction": "slid >= 8 cm, but more than 45 degrees off the named direction (push)",
    "pushed short": "slid, but did not end >= 8 cm along the named direction, flat on the table (push)",
    "knocked away": "the block slid >= 3 cm: touch asks to leave it in place (touch)",
    "not held": "reached, did not stay within 3 cm for 0.5 s (touch)",
    "not achieved": "the success predicate never held; a task family defined outside embodia (--tasks) gets "
    "no finer label than this, beside the block-reaching ones when its task names a block",
}


# How to read the labels, for reports and docs.
FAILURE_GUIDE = (
    "'wrong block' is the language wall (the instruction is not grounded); 'never reached', 'no grasp "
    "attempt', 'landed on block', 'missed grasp' and 'not lifted' are precision near the object (vision "
    "and control); the others are later phases of the motion."
)


# How to read the measures column, for reports.
MEASURE_GUIDE = (
    "'How far off' gives medians over the succeeded and the failed episodes: for grasps, the tool's "
    "horizontal offset from the block's centre and the jaws' turn from its faces at the first grasp "
    "attempt (the scripted expert: 0.2 cm, under 1 degree); for pushes, how far the block slid (8 cm "
    "needed) and its angle from the named direction (45 degrees allowed)."
)


class TaskProgress:
    """Milestones of one task, updated tick by tick from the same `SceneState` as the success check."""

    def __init__(self, task: TaskInstance, present: tuple[str, ...]):
        self.task = task
        # Blocks that count as "another block": present, not the named one, not the one to stack on.
        self.others = tuple(c for c in present if c not in (task.color, task.other))
        self.stages: dict[str, int] = {}  # milestone -> first tick it held
        self.final_slide = np.zeros(2)
        self.ticks = 0
        self.attempt: dict[str, float] | None = None  # the first grasp attempt, measured

    def update(self, s: SceneState) -> None:
        t, self.ticks = self.task, self.ticks + 1
        if t.color is None:  # a family of the user's about no block: its predicate is all there is
            return
        p, p0 = s.block_pos[t.color], s.block_start[t.color]
        if self._near(s, t.color):
            self._mark("reached")
        if "reached" not in self.stages and any(self._near(s, c) for c in self.others):
            self._mark("other_reached")
        closing = s.gripper_joint is not None and s.gripper_joint < GRIPPER_CLOSING
        grasping_task = t.family in GRASP_FAMILIES
        height = p[2] - p0[2]
        touching_above = s.gripper_contact[t.color] and s.tool_pos[2] - p[2] >= LANDED_ABOVE
        if grasping_task and touching_above and height < GRASP_LIFT:
            self._mark("landed_on")
        if grasping_task and closing and np.linalg.norm(s.tool_pos - p) < REACH_RADIUS:
            self._mark("closed_near")
        if (
            grasping_task
            and closing
            and self.attempt is None
            and np.linalg.norm(s.tool_pos - p) < ATTEMPT_RADIUS
        ):
            self.attempt = self._measure_attempt(s)
        if s.gripper_contact[t.color] and height >= GRASP_LIFT:
            self._mark("grasped")
        if t.family == "pick" and height >= PICK_HEIGHT:
            self._mark("lifted")
        if t.family == "place" and np.linalg.norm(p[:2] - s.bowl_pos[:2]) < s.bowl_inner_radius:
            self._mark("over_goal")
        if t.family == "stack":
            q = s.block_pos[t.other]
            if np.linalg.norm(p[:2] - q[:2]) < s.block_half and p[2] > q[2] + s.block_half:
                self._mark("over_goal")
        self.final_slide = p[:2] - p0[:2]
        if t.family in ("push", "touch") and np.linalg.norm(self.final_slide) >= MOVED:
            self._mark("moved")

    def _measure_attempt(self, s: SceneState) -> dict[str, float]:
        d = s.tool_pos - s.block_pos[self.task.color]
        out = {
            "offset_cm": round(float(np.linalg.norm(d[:2])) * 100, 2),
            "height_cm": round(float(d[2]) * 100, 2),
        }
        if s.jaw_yaw is not None and s.block_yaw is not None:
            # A cube's faces repeat every 90 degrees: the misalignment is at most 45.
            turn = (s.block_yaw[self.task.color] - s.jaw_yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4
            out["jaw_deg"] = round(abs(float(np.degrees(turn))), 1)
        return out

    @staticmethod
    def _near(s: SceneState, color: str) -> bool:
        # Contact counts too: a push is made with the jaw's side, whose tool point stays ~4 cm away.
        return bool(
            s.gripper_contact[color] or np.linalg.norm(s.tool_pos - s.block_pos[color]) < REACH_RADIUS
        )

    def _mark(self, stage: str) -> None:
        self.stages.setdefault(stage, self.ticks)

    def failure(self) -> str:
        """Where a failed episode stopped (a key of FAILURE_LABELS). Call it only for a failed episode."""
        family, has = self.task.family, self.stages.__contains__
        if self.task.color is None:
            return "not achieved"
        if not has("reached"):
            return "wrong block" if has("other_reached") else "never reached"
        if family not in BUILTIN_FAMILIES:
            return "not achieved"
        if family == "touch":
            return "knocked away" if has("moved") else "not held"
        if family == "push":
            slide = float(np.linalg.norm(self.final_slide))
            if not has("moved"):
                return "not pushed"
            return "wrong direction" if slide >= PUSH_DISTANCE and self._off_direction() else "pushed short"
        if not has("grasped"):
            if has("landed_on"):
                return "landed on block"
            return "missed grasp" if has("closed_near") else "no grasp attempt"
        if family == "pick":
            return "dropped" if has("lifted") else "not lifted"
        return "not set down" if has("over_goal") else "not carried"

    def _off_direction(self) -> bool:
        d = self.final_slide / max(float(np.linalg.norm(self.final_slide)), 1e-9)
        return float(np.dot(d, np.asarray(DIRECTIONS[self.task.direction]))) < np.cos(np.radians(45))

    def measures(self) -> dict[str, dict[str, float]]:
        """How far off the episode was (see the module docstring); kinds that do not apply are left out."""
        out: dict[str, dict[str, float]] = {}
        if self.attempt is not None:
            out["grasp"] = self.attempt
        if self.task.family == "push":
            slid = float(np.linalg.norm(self.final_slide))
            push = {"slid_cm": round(slid * 100, 2)}
            if slid >= MOVED:  # the direction of a mere nudge means nothing
                cos = float(self.final_slide @ np.asarray(DIRECTIONS[self.task.direction], float)) / slid
                push["off_deg"] = round(float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))), 1)
            out["push"] = push
        return out

    def summary(self, success: bool) -> dict:
        """What `info["progress"]` carries at the end of an episode."""
        order = sorted(self.stages, key=self.stages.__getitem__)
        return {"stages": order, "failure": None if success else self.failure(), "measures": self.measures()}


def describe_measure(kind: str, row: dict[str, float]) -> str:
    """One measure (or a median of them) in words: "1.8 cm off, jaws 29 deg", "slid 5.1 cm, 12 deg off"."""
    if kind == "grasp":
        text = f"{row['offset_cm']:.1f} cm off"
        return text + (f", jaws {row['jaw_deg']:.0f} deg" if "jaw_deg" in row else "")
    if kind == "push":
        text = f"slid {row['slid_cm']:.1f} cm"
        return text + (f", {row['off_deg']:.0f} deg off" if "off_deg" in row else "")
    return ", ".join(f"{k} {v:g}" for k, v in row.items())


def measure_text(by_kind: dict[str, dict[str, dict[str, float]]]) -> str:
    """'grasp: succeeded 28: 0.6 cm off, jaws 21 deg; failed 22: 1.8 cm off, jaws 29 deg'."""
    parts = []
    for kind, by_outcome in by_kind.items():
        outcomes = "; ".join(
            f"{outcome} {int(row['episodes'])}: {describe_measure(kind, row)}"
            for outcome, row in by_outcome.items()
        )
        parts.append(f"{kind}: {outcomes}")
    return " | ".join(parts)
