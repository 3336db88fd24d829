"""A scripted driver of the teleoperation page's web API: it demonstrates episodes the way a person at
the keyboard does (velocity commands resent every tick, watching the state), then saves the ones where
the task's success predicate lit, and discards the others.

    embodia teleop --sim --tasks examples/tasks/beside.py --task beside --record demos --view-port 8765 &
    python examples/teleop_driver.py http://127.0.0.1:8765 --episodes 20

It is a script, not a person: demonstrations it records measure the pipeline (page API -> dataset ->
fine-tune), not how people demonstrate. It knows two families: `pick` and the example `beside`
(examples/tasks/beside.py). Uses only the standard library, so it runs anywhere the page is reachable.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import urllib.error
import urllib.request

DT = 1 / 30  # the arm's control period
HOVER_Z, CARRY_Z = 0.07, 0.09
PITCH = 1.45  # radians below horizontal: nearly vertical, as the scripted experts grasp


class Http:
    """GET /api/teleop and POST /api/teleop/{command,episode} on a running page."""

    def __init__(self, url: str):
        self.url = url.rstrip("/").split("#")[0].rstrip("/")

    def get(self) -> dict:
        with urllib.request.urlopen(self.url + "/api/teleop", timeout=10) as res:
            return json.loads(res.read())

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + "/api/teleop/" + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return json.loads(res.read())
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{path}: {json.loads(exc.read()).get('error')}") from None


def clip(x: float) -> float:
    return max(-1.0, min(1.0, x))


def next_tick(api, seen: int) -> dict:
    """Wait for the loop's next tick (the driver acts once per tick, like a person's held key)."""
    while True:
        s = api.get()
        if s["ticks"] > seen:
            return s
        time.sleep(0.003)


def steer(api, goal, gripper: str | None = None, tol: float = 0.003, limit: int = 240) -> dict:
    """Move the grasp point's target to `goal` (x, y, z) at the tilt PITCH, then let the arm settle."""
    s = api.get()
    speed, pitch_speed = s["speed_m_s"], 1.0
    for _ in range(limit):
        c = s["control"]
        err = [g - t for g, t in zip(goal, c["target_m"], strict=True)]
        perr = PITCH - c["pitch_rad"]
        if math.dist(goal, c["target_m"]) < tol and abs(perr) < 0.03:
            break
        move = [clip(e / (speed * DT * 2)) for e in err]
        api.post("command", {"move": move, "pitch": clip(perr / (pitch_speed * DT * 2)), "gripper": gripper})
        s = next_tick(api, s["ticks"])
        if not s["control"]["reachable"]:
            break
    return hold(api, 8, gripper)


def hold(api, ticks: int, gripper: str | None = None) -> dict:
    s = api.get()
    for _ in range(ticks):
        api.post("command", {"gripper": gripper})
        s = next_tick(api, s["ticks"])
    return s


def jaw_error(s: dict, color: str) -> float:
    """The jaws' yaw off the block's faces, wrapped to -45..45 degrees (a block looks the same every 90)."""
    d = s["scene"]["jaw_yaw"] - s["scene"]["block_yaw"][color]
    return (d + math.pi / 4) % (math.pi / 2) - math.pi / 4


def align_jaws(api, color: str, limit: int = 90) -> dict:
    """Turn the wrist until the jaws close across the block's faces: a short turn first shows which way
    the wrist turns the jaws, then turn towards the block's yaw, slowing down near it."""
    s0 = api.get()
    s = hold_roll(api, 4, 0.5)
    turn = 1.0 if jaw_error(s, color) - jaw_error(s0, color) > 0 else -1.0
    for _ in range(limit):
        d = jaw_error(s, color)
        if abs(d) < 0.03:
            break
        api.post("command", {"roll": max(-0.4, min(0.4, -turn * d / 1.5))})
        s = next_tick(api, s["ticks"])
    return hold(api, 8)


def hold_roll(api, ticks: int, roll: float) -> dict:
    s = api.get()
    for _ in range(ticks):
        api.post("command", {"roll": roll})
        s = next_tick(api, s["ticks"])
    return hold(api, 4)


def grasp(api, color: str) -> dict:
    s = api.get()
    x, y, z = s["scene"]["blocks"][color]
    steer(api, (x, y, HOVER_Z), gripper="open")
    align_jaws(api, color)
    x, y, z = api.get()["scene"]["blocks"][color]
    steer(api, (x, y, z), gripper="open", tol=0.002)
    return hold(api, 12, gripper="close")


def pick(api, slots: dict) -> None:
    s = grasp(api, slots["color"])
    x, y, _ = s["control"]["target_m"]
    steer(api, (x, y, 0.12), gripper="close")
    hold(api, 20, gripper="close")


DIRECTIONS = {"front": (1.0, 0.0), "back": (-1.0, 0.0), "left": (0.0, 1.0), "right": (0.0, -1.0)}


def beside_spot(scene: dict, color: str, other: str, direction: str) -> tuple[float, float]:
    """On the named side of the other block, the spot farthest from everything else within reach."""
    ux, uy = DIRECTIONS[direction]
    qx, qy, _ = scene["blocks"][other]
    px, py, _ = scene["blocks"][color]
    obstacles = [b[:2] for c, b in scene["blocks"].items() if c not in (color, other)] + [scene["bowl"][:2]]
    best, score = (qx + 0.07 * ux, qy + 0.07 * uy), -1e9
    for along in (0.06, 0.07, 0.08, 0.09, 0.10):
        sx, sy = qx + along * ux, qy + along * uy
        reach = math.dist((sx, sy), (0.039, 0.0))
        if math.dist((sx, sy), (px, py)) < 0.04 or not 0.12 < reach < 0.29:
            continue
        clear = min(math.dist((sx, sy), o) for o in obstacles) - 0.02 * (along - 0.06) / 0.01
        if clear > score:
            best, score = (sx, sy), clear
    return best


def beside(api, slots: dict) -> None:
    s = grasp(api, slots["color"])
    x, y, _ = s["control"]["target_m"]
    steer(api, (x, y, CARRY_Z), gripper="close")
    sx, sy = beside_spot(api.get()["scene"], slots["color"], slots["other"], slots["direction"])
    steer(api, (sx, sy, CARRY_Z), gripper="close")
    steer(api, (sx, sy, 0.016), gripper="close", tol=0.002)
    hold(api, 8, gripper="open")
    steer(api, (sx, sy, HOVER_Z), gripper="open")
    hold(api, 10, gripper="open")


SCRIPTS = {"pick": pick, "beside": beside}


def demonstrate(api, seed: int | None = None) -> dict:
    """One episode: a new scene, start, the family's script, then save (success lit) or discard."""
    s = api.post("episode", {"action": "new"} | ({} if seed is None else {"seed": seed}))
    script = SCRIPTS.get(s["family"])
    if script is None:
        raise ValueError(f"no script for family {s['family']!r}; this driver knows {sorted(SCRIPTS)}")
    api.post("episode", {"action": "start"})
    script(api, s["slots"])
    s = api.get()
    if s["succeeded"]:
        return api.post("episode", {"action": "save"}) | {"kept": True}
    return api.post("episode", {"action": "discard"}) | {"kept": False}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="the teleoperation page, e.g. http://127.0.0.1:8765")
    parser.add_argument("--episodes", type=int, default=20, help="demonstrations to keep")
    parser.add_argument("--max-attempts", type=int, default=None, help="default: 2 x --episodes")
    args = parser.parse_args()
    api, kept, attempts = Http(args.url), 0, 0
    t0 = time.monotonic()
    while kept < args.episodes and attempts < (args.max_attempts or 2 * args.episodes):
        r = demonstrate(api)
        attempts += 1
        kept += r["kept"]
        last = r["last_saved"] if r["kept"] else None
        print(f"attempt {attempts}: {r['instruction']!r} {'saved' if r['kept'] else 'discarded'}"
              + (f" ({last['frames']} frames)" if last else ""), flush=True)  # fmt: skip
    s = api.get()
    print(json.dumps({"kept": kept, "attempts": attempts, "seconds": round(time.monotonic() - t0, 1),
                      "dataset": s["dataset"], "timing": s["timing"]}))  # fmt: skip


if __name__ == "__main__":
    main()
