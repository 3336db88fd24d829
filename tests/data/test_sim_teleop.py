"""The browser teleoperation session, without a browser: episode controls and their mistakes, what a saved
episode keeps (trimmed at the start, cut at the first success frame), and the folders it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.data.sim_teleop import SimTeleop, SimTeleopConfig, TeleopError, _trimmed
from embodia.robots.spec import ACTION


def frames(actions, wins=()):
    return [
        {ACTION: np.asarray(a, np.float32), "next.success": np.array([i in wins])}
        for i, a in enumerate(actions)
    ]


def test_trimming_starts_at_the_first_movement_and_ends_at_the_first_success():
    still, moving = [np.zeros(6)] * 4, [np.full(6, 0.01 * i) for i in range(1, 9)]
    held = [moving[-1]] * 4  # the arm stopped where it went
    kept = _trimmed(frames(still + moving + held, wins=(9, 10)), 0.002)
    assert len(kept) == 7 and kept[-1]["next.success"][0]  # frames 3..9: one still frame, then to the win
    assert len(_trimmed(frames(still + moving + held), 0.002)) == 9  # no success: to the last movement
    assert _trimmed(frames(still), 0.002) == []


def test_controls_their_mistakes_and_a_saved_episode(tmp_path):
    root = tmp_path / "demos"
    with SimTeleop(SimTeleopConfig(task="pick", dataset=str(root), seed=5)) as s:
        assert s.state()["family"] == "pick" and s.state()["seed"] == 5
        with pytest.raises(TeleopError, match="not recording"):
            s.save()
        with pytest.raises(TeleopError, match="nothing to discard"):
            s.discard()
        s.start()
        with pytest.raises(TeleopError, match="already recording"):
            s.start()
        for _ in range(20):  # ticks run in this thread: no loop started
            s.command(move=(0, 0, -1))
            s.tick()
        st = s.save()
        assert st["saved"] == 1 and not st["recording"] and st["last_saved"]["frames"] >= 15
        s.command()  # stop: the arm ramps down within ramp_s
        for _ in range(5):
            s.tick()
        s.start()
        for _ in range(5):
            s.tick()  # nothing moved
        with pytest.raises(TeleopError, match="nothing moved"):
            s.save()
        assert s.state()["discarded"] == 1
        assert (
            s.new_scene(task="push the red block to the left")["instruction"]
            == "push the red block to the left"
        )
        with pytest.raises(ValueError, match="unknown task"):
            s.new_scene(task="juggle the blocks")
    from embodia.data.reader import LeRobotDataset

    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 1 and "next.success" in ds.features
    with pytest.raises(ValueError, match="not empty"):
        SimTeleop(SimTeleopConfig(dataset=str(root)))


def test_without_a_dataset_nothing_is_saved_and_bad_configs_are_refused():
    with SimTeleop(SimTeleopConfig(task="touch")) as s:
        s.start()
        with pytest.raises(TeleopError, match="no dataset"):
            s.save()
    with pytest.raises(ValueError, match="unknown task"):
        SimTeleop(SimTeleopConfig(task="juggle the blocks"))
    for bad in ({"split": "test"}, {"record_size": 95}, {"resume": True}):
        with pytest.raises(ValueError):
            SimTeleopConfig(**bad)
