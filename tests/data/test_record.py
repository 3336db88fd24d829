import pytest

from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset
from embodia.data.record import PerturbConfig, RecordConfig, record


def test_keep_failures_labels_frames_and_resume_checks_features(tmp_path):
    root = tmp_path / "ds"
    res = record(RecordConfig(tasks="touch", episodes=2, num_envs=1, image_size=32, keep_failures=True), root)
    assert res.saved == 2 and res.attempted == 2
    ds = LeRobotDataset.open(root)
    succeeded = 0
    for e in ds.episodes:
        d = ds.episode_data(e["episode_index"])
        assert d["next.done"][-1] and not d["next.done"][:-1].any()  # done only on the last frame
        assert not d["next.success"][:-1].any()  # success ends the episode
        succeeded += bool(d["next.success"][-1])
    assert succeeded == res.successes
    with pytest.raises(DatasetError, match="features differ"):
        record(RecordConfig(tasks="touch", episodes=1, num_envs=1, image_size=32), root, resume=True)


def test_unknown_family_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown task family 'juggle'"):
        record(RecordConfig(tasks="juggle", episodes=1), tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_action_noise_perturbs_the_executed_action_and_records_the_experts(tmp_path):
    """Recovery data: with noise the arm's states leave the clean run's path, while the recorded
    actions stay the expert's (it interpolates from its own last command, and its goals come from the
    blocks, not the arm: the two runs' labels agree exactly until a perturbation moves a block)."""
    import numpy as np

    clean_root, noisy_root = tmp_path / "clean", tmp_path / "noisy"
    base = dict(tasks="pick", episodes=1, num_envs=1, image_size=32, keep_failures=True, seed=3)
    record(RecordConfig(**base), clean_root)
    record(RecordConfig(**base, perturb=PerturbConfig(action_noise=0.05)), noisy_root)
    clean = LeRobotDataset.open(clean_root).episode_data(0)
    noisy = LeRobotDataset.open(noisy_root).episode_data(0)
    n = min(len(clean["action"]), len(noisy["action"]))
    np.testing.assert_array_equal(noisy["action"][:10], clean["action"][:10])
    drift = np.abs(noisy["observation.state"][:n, :5] - clean["observation.state"][:n, :5]).max()
    assert drift > 0.01  # radians: the executed perturbation moved the joints
    # The gripper is never perturbed (its state moves only through contact/coupling).
    gripper_gap = np.abs(noisy["observation.state"][:n, 5] - clean["observation.state"][:n, 5]).max()
    assert gripper_gap < 0.2 * drift


def test_negative_action_noise_is_a_clear_error():
    with pytest.raises(ValueError, match="action_noise must be a finite number >= 0"):
        RecordConfig(perturb=PerturbConfig(action_noise=-1.0))


def test_tabletop_families_are_recorded_interleaved(tmp_path):
    """One pool of envs takes the families in turn, so a recording stopped early is still balanced
    (run family by family, a stopped 4-family recording once held no `touch` episode at all)."""
    from embodia.data.record import _batches
    from embodia.data.recording import record_worlds
    from embodia.sim.tasks import parse_instruction

    cfg = RecordConfig(tasks="pick,touch", episodes=4, num_envs=2, image_size=32, keep_failures=True)
    _, worlds = record_worlds(cfg)
    ((_, jobs),) = _batches(worlds, [(i % 2, 100 + i) for i in range(4)])
    assert [(seed, opts["family"]) for seed, opts in jobs] == [
        (100, "pick"), (101, "touch"), (102, "pick"), (103, "touch")
    ]  # fmt: skip
    res = record(cfg, tmp_path / "ds")
    assert res.attempted == 4
    ds = LeRobotDataset.open(tmp_path / "ds")
    families = [parse_instruction(e["tasks"][0]).family for e in ds.episodes]
    assert sorted(families) == ["pick", "pick", "touch", "touch"]
    assert set(families[:2]) == {"pick", "touch"}  # both families from the first pair of envs on
    # Meta-World tasks need their own env class each: one pool per task, in order.
    _, mw = record_worlds(RecordConfig(tasks="metaworld:reach,push", episodes=4))
    assert [len(j) for _, j in _batches(mw, [(i % 2, i) for i in range(4)])] == [2, 2]
