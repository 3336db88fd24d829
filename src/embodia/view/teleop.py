"""The teleoperation page's web API (`embodia teleop --sim`), on the viewer's app; the page at #/teleop
uses exactly this, so a script can drive a whole episode the same way.

    GET  /api/teleop             the session: instruction, success predicate lit or not, recording,
                                 frames, saved episodes, the end effector's target and whether the IK
                                 reaches it, the scene's positions, the key map and the loop's timing
    POST /api/teleop/command     {"move": [x, y, z], "pitch": p, "roll": r, "gripper": "open" | "close"}
                                 velocities, each -1..1 of the configured speed, in the robot's frame
                                 (x forward, y left, z up); held for `timeout_s` (0.5 s): resend to keep
                                 moving, as the page does while a key is down
    POST /api/teleop/episode     {"action": "new" | "start" | "save" | "discard", "seed": N, "task": T}
                                 (seed and task only with "new": a family name or an instruction)

The cameras stream from the live routes (embodia.view.live: /live/stream/front, /live/stream/wrist).

Errors are {"error": message}: 422 for a malformed body (wrong types, NaN, unknown fields), 409 for a
control that does not apply now (save while not recording), 400 for an unknown task, 403 for a request
from another origin (the arm must only move on this page's or a local script's say).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from embodia.data.sim_teleop import SimTeleop, TeleopError
from embodia.net import is_loopback
from embodia.view.viewer_data import ViewerError

# The key map, one source for the page (which binds what it is given) and the docs. Directions are the
# robot's: forward is away from its base, left is the robot's left.
KEYS: list[dict[str, Any]] = [
    {"key": "w", "label": "W", "does": "forward", "axis": "x", "sign": 1},
    {"key": "s", "label": "S", "does": "back", "axis": "x", "sign": -1},
    {"key": "a", "label": "A", "does": "left", "axis": "y", "sign": 1},
    {"key": "d", "label": "D", "does": "right", "axis": "y", "sign": -1},
    {"key": "r", "label": "R", "does": "up", "axis": "z", "sign": 1},
    {"key": "f", "label": "F", "does": "down", "axis": "z", "sign": -1},
    {"key": "i", "label": "I", "does": "tilt the gripper down", "axis": "pitch", "sign": 1},
    {"key": "k", "label": "K", "does": "tilt the gripper up", "axis": "pitch", "sign": -1},
    {"key": "j", "label": "J", "does": "turn the wrist left", "axis": "roll", "sign": 1},
    {"key": "l", "label": "L", "does": "turn the wrist right", "axis": "roll", "sign": -1},
    {"key": "q", "label": "Q", "does": "open the gripper", "gripper": "open"},
    {"key": "e", "label": "E", "does": "close the gripper", "gripper": "close"},
    {"key": "n", "label": "N", "does": "new scene", "episode": "new"},
    {"key": "Enter", "label": "Enter", "does": "start recording / save the episode", "episode": "toggle"},
    {"key": "Backspace", "label": "Backspace", "does": "discard the episode", "episode": "discard"},
]
# Gamepad (the browser's standard mapping): axes and buttons by index.
GAMEPAD: dict[str, Any] = {
    "axes": {"y": [0, -1], "x": [1, -1], "roll": [2, -1], "z": [3, -1]},  # [axis index, sign]
    "buttons": {"pitch+": 13, "pitch-": 12, "open": 6, "close": 7, "toggle": 0, "discard": 1, "new": 3},
    "deadzone": 0.15,
    "help": "left stick: forward/back and left/right; right stick: up/down and wrist roll; d-pad up/down: "
    "tilt; left/right trigger: open/close the gripper; A: start/save; B: discard; Y: new scene",
}


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    move: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0], min_length=3, max_length=3)
    pitch: float = 0.0
    roll: float = 0.0
    gripper: Literal["open", "close"] | None = None

    @field_validator("move")
    @classmethod
    def _finite_move(cls, v: list[float]) -> list[float]:
        if not all(math.isfinite(x) for x in v):
            raise ValueError("move must be 3 finite numbers")
        return v

    @field_validator("pitch", "roll")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class Episode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["new", "start", "save", "discard"]
    seed: int | None = Field(default=None, ge=0, lt=2**31)
    task: str | None = Field(default=None, min_length=1, max_length=160)


def add_teleop_routes(app, session: SimTeleop) -> None:
    """The teleoperation endpoints on the viewer's FastAPI app."""

    def same_origin(request: Request) -> None:
        # A browser always sends Origin on a cross-site POST; a local script sends none.
        origin = request.headers.get("origin")
        if origin is None:
            return
        host = origin.split("://", 1)[-1].split("/", 1)[0]
        if origin.split("://", 1)[-1] != request.headers.get("host", "") or not is_loopback(_host(host)):
            raise ViewerError(403, f"requests from {origin!r} may not drive the arm; use the page itself")

    @app.get("/api/teleop")
    def api_teleop() -> dict[str, Any]:
        return session.state() | {"keys": KEYS, "gamepad": GAMEPAD, "speed_m_s": session.cfg.control.speed,
                                  "timeout_s": session.cfg.control.timeout_s}  # fmt: skip

    @app.post("/api/teleop/command")
    def api_command(body: Command, request: Request) -> dict[str, Any]:
        same_origin(request)
        return session.command(move=body.move, pitch=body.pitch, roll=body.roll, gripper=body.gripper)

    @app.post("/api/teleop/episode")
    def api_episode(body: Episode, request: Request) -> dict[str, Any]:
        same_origin(request)
        if body.action != "new" and (body.seed is not None or body.task is not None):
            raise ViewerError(422, "seed and task go with action 'new' only")
        try:
            if body.action == "new":
                return session.new_scene(seed=body.seed, task=body.task)
            return {"start": session.start, "save": session.save, "discard": session.discard}[body.action]()
        except TeleopError as exc:
            raise ViewerError(409, str(exc)) from None
        except ValueError as exc:  # an unknown task or instruction
            raise ViewerError(400, str(exc)) from None


def _host(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.rsplit(":", 1)[0]
