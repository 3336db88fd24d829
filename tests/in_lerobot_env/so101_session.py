"""LeRobot's own SO-101 follower on a serial port: connect (calibrating through its own prompts when
no calibration file exists), read, write, disconnect. Runs ONLY inside a LeRobot 0.4.4 environment;
embodia's hardware tests run it against the bus emulator's pseudo-terminal.

    python so101_session.py PORT CALIBRATION_DIR ROBOT_ID GOALS_JSON

GOALS_JSON maps motor names to goals in LeRobot's units (degrees for the body, 0..100 for the
gripper), sent with `send_action` after the first observation. Prints one JSON line per step:
{"observation": {...}} after connecting, {"sent": {...}} after the action, {"observation": {...}}
once the arm has had time to move, {"disconnected": true}.
"""

import json
import sys
import time
from pathlib import Path

from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig


def main() -> None:
    port, cal_dir, robot_id, goals = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    robot = SO101Follower(SO101FollowerConfig(port=port, id=robot_id, calibration_dir=cal_dir))
    robot.connect(calibrate=True)
    try:
        print(json.dumps({"observation": robot.get_observation()}), flush=True)
        sent = robot.send_action({f"{k}.pos": float(v) for k, v in goals.items()})
        print(json.dumps({"sent": sent}), flush=True)
        time.sleep(1.0)
        print(json.dumps({"observation": robot.get_observation()}), flush=True)
    finally:
        robot.disconnect()
    print(json.dumps({"disconnected": True}), flush=True)


if __name__ == "__main__":
    main()
