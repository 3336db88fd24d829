import pytest

from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset
from embodia.data.record import RecordConfig, record


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
