"""`embodia run --robot so101`: the shipped base acting on the emulated follower (OpenCV cameras from
video files) through the chunk executor, at 30 Hz."""

from __future__ import annotations

import json

import pytest

from embodia.cli import main
from embodia.robots.emulator import BusEmulator, calibrate_emulated

cv2 = pytest.importorskip("cv2", reason="OpenCV comes with the dev extra")
pytest.importorskip("scservo_sdk", reason="feetech-servo-sdk comes with the dev extra")


def test_base_acts_on_the_emulated_follower(tmp_path, camera_files, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        rc = main(["run", "pick up the red block", "--robot", "so101", "--follower", bus.port, "--follower-id", "F",
                   "--calibration-dir", str(tmp_path), "--cameras", camera_files, "--seconds", "3"])  # fmt: skip
        assert rc == 0, capsys.readouterr().out
        assert bus.violations == [] and len(bus.goals) >= 6
        assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())
    (report_path,) = (tmp_path / "embodia_runs" / "run").glob("*-so101/report.json")
    report = json.loads(report_path.read_text())
    timing = report["timing"]
    assert timing["ticks"] >= 1 and report["chunks"] >= 1
    # Every 1/30 s period of the 3 s is either a tick or a missed tick (how many of each: the benchmark).
    assert 87 <= timing["ticks"] + timing["ticks_missed"] <= 91
    assert "ticks missed" in capsys.readouterr().out


def test_a_served_policy_acts_on_the_emulated_follower_asynchronously(
    tmp_path, camera_files, monkeypatch, capsys
):
    """`embodia serve` on one side, the arm on the other: the runner fetches each chunk over the wire 2
    ticks before it is due while the follower keeps executing."""
    from embodia.policy.loading import load_policy
    from embodia.serve.server import running_server

    monkeypatch.chdir(tmp_path)
    with running_server(load_policy("base")) as url, BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        rc = main(["run", "pick up the red block", "--robot", "so101", "--checkpoint", url, "--replan-every", "6", "--delay", "2",
                   "--follower", bus.port, "--follower-id", "F", "--calibration-dir", str(tmp_path),
                   "--cameras", camera_files, "--seconds", "2"])  # fmt: skip
        assert rc == 0, capsys.readouterr().out
        assert bus.violations == [] and len(bus.goals) >= 6
        assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())
    (run_dir,) = (tmp_path / "embodia_runs" / "run").glob("*-so101")
    report = json.loads((run_dir / "report.json").read_text())
    assert report["execution"] == {"replan_every": 6, "join": "naive", "ensemble": None, "delay": 2}
    assert report["chunks"] >= 1 and report["chunk_ms_p50"] > 0  # every fetch a round trip to the server
    assert 0 <= report["waits"] <= report["chunks"]
    assert json.loads((run_dir / "manifest.json").read_text())["inputs"]["policy"] == url


def test_run_on_the_arm_needs_a_follower(capsys):
    assert main(["run", "pick up the red block", "--robot", "so101"]) == 2
    assert "--follower PORT" in capsys.readouterr().out


def test_an_impossible_schedule_is_refused_before_the_arm_moves(tmp_path, capsys):
    """The base executes its whole chunk, so there is no room to fetch the next one early."""
    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        before = dict(bus.instructions)
        rc = main(["run", "pick up the red block", "--robot", "so101", "--delay", "2", "--follower", bus.port,
                   "--follower-id", "F", "--calibration-dir", str(tmp_path), "--cameras", ""])  # fmt: skip
        assert rc == 2 and "delay must be in" in capsys.readouterr().out
        assert bus.instructions == before  # not one packet reached the servos


def test_real_arm_evaluation_with_human_labels(tmp_path, camera_files):
    from embodia.commands.arm import FollowerArm
    from embodia.eval.real import evaluate_on_robot
    from embodia.policy.loading import load_policy

    policy = load_policy("base")
    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        arm = FollowerArm(
            follower=bus.port, follower_id="F", calibration_dir=str(tmp_path), cameras=camera_files
        )
        readied, labels = [], iter([True, False, True])
        with arm.build(96) as follower:
            result = evaluate_on_robot(policy, follower, "pick up the red block", 3, 1.0, readied.append,
                                       lambda i: next(labels))  # fmt: skip
        assert bus.violations == []
    assert readied == [0, 1, 2]
    assert (result.successes, result.n) == (2, 3)
    lo, hi = result.interval
    assert 0.2 < lo < 0.67 < hi < 0.95  # Wilson 95 % for 2 of 3
    assert all(ep["timing"]["ticks"] >= 1 for ep in result.episodes)


def test_eval_on_the_arm_at_the_terminal(tmp_path, camera_files):
    import os
    import subprocess
    import sys
    import threading
    import time

    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        args = [sys.executable, "-m", "embodia.cli", "eval", "base", "--robot", "so101", "--follower", bus.port,
                "--follower-id", "F", "--calibration-dir", str(tmp_path), "--cameras", camera_files, "--instruction",
                "pick up the red block", "--episodes", "2", "--episode-s", "1", "--out", str(tmp_path / "ev")]  # fmt: skip
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "COLUMNS": "200"})  # fmt: skip
        out: list[str] = []
        reader = threading.Thread(
            target=lambda: out.extend(iter(lambda: os.read(proc.stdout.fileno(), 4096).decode(), ""))
        )
        reader.start()

        def answer(prompt: str, line: bytes, count: int) -> None:
            deadline = time.monotonic() + 120
            while "".join(out).count(prompt) < count:
                assert time.monotonic() < deadline and proc.poll() is None, "".join(out)[-2000:]
                time.sleep(0.05)
            proc.stdin.write(line)
            proc.stdin.flush()

        try:
            answer("press ENTER to start", b"\n", 1)
            answer("success? [y/n]", b"maybe\n", 1)  # not an answer: asked again
            answer("success? [y/n]", b"y\n", 2)
            answer("press ENTER to start", b"\n", 2)
            answer("success? [y/n]", b"n\n", 3)
            assert proc.wait(timeout=60) == 0, "".join(out)[-2000:]
        finally:
            proc.kill()
            reader.join(timeout=5)
    result = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert (result["successes"], result["n"]) == (1, 2)
    assert "1/2 episodes succeeded" in "".join(out)


def test_kill_stops_the_arm_like_ctrl_c(tmp_path, camera_files):
    """`kill` (SIGTERM, as a scheduler or `timeout` sends it) while the base acts on the arm: the process
    leaves through the same path as Ctrl-C, so the follower goes to rest and its torque goes off (the
    default SIGTERM action would end the process with the servos still holding their last goal)."""
    import signal
    import subprocess
    import sys
    import time

    with BusEmulator() as bus:
        calibrate_emulated(bus, "follower", "F", tmp_path)
        args = [sys.executable, "-m", "embodia.cli", "run", "pick up the red block", "--robot", "so101",
                "--follower", bus.port, "--follower-id", "F", "--calibration-dir", str(tmp_path),
                "--cameras", camera_files, "--seconds", "300"]  # fmt: skip
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180

            def acting() -> bool:  # goals written and every servo's torque on (the first goals may
                # come before the last servo's torque is enabled)
                return len(bus.goals) >= 12 and all(s.get("Torque_Enable") == 1 for s in bus.servos.values())

            while not acting():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[
                    -2000:
                ]
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            out = proc.communicate(timeout=60)[0].decode()
        finally:
            proc.kill()
        # The exit status is 130, but about 1 run in 10 under load the process, having printed
        # "interrupted" with no traceback, ends killed by SIGINT (-2); the cause is not found yet. What
        # matters to the arm is asserted below.
        assert proc.returncode in (130, -signal.SIGINT) and "interrupted" in out, out[-2000:]
        assert all(s.get("Torque_Enable") == 0 for s in bus.servos.values())
        assert bus.violations == []
