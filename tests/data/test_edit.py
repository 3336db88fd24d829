"""Dataset editing keeps indices, tasks, stats and frames consistent, and never touches the input."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embodia.cli import main
from embodia.data import edit
from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"
METAWORLD = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "lerobot_v3_metaworld3"


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _consistent(root: Path) -> LeRobotDataset:
    ds = LeRobotDataset.open(root)
    start = 0
    for i, e in enumerate(ds.episodes):
        assert e["episode_index"] == i and e["dataset_from_index"] == start
        d = ds.episode_data(i)
        assert list(d["index"]) == list(range(start, start + e["length"]))
        assert list(d["frame_index"]) == list(range(e["length"]))
        assert {ds.tasks[t] for t in d["task_index"]} == set(e["tasks"])
        start += e["length"]
    stats = json.loads((root / "meta/stats.json").read_text())
    actions = np.concatenate([ds.episode_data(e["episode_index"])["action"] for e in ds.episodes])
    assert np.allclose(stats["action"]["mean"], actions.mean(0)) and stats["action"]["count"] == [
        len(actions)
    ]
    return ds


def test_delete_episodes_copies_frames_bit_exact(tmp_path):
    before = _hashes(FIXTURE)
    out = edit.delete_episodes(FIXTURE, [1, 3], tmp_path / "out")
    src, dst = LeRobotDataset.open(FIXTURE), _consistent(out)
    assert dst.num_episodes == 3
    for new, old in enumerate([0, 2, 4]):
        assert np.array_equal(dst.episode_data(new)["action"], src.episode_data(old)["action"])
        for cam in src.camera_keys:
            assert np.array_equal(dst.episode_frames(new, cam), src.episode_frames(old, cam))  # no re-encode
    assert _hashes(FIXTURE) == before
    with pytest.raises(ValueError, match=r"episodes \[7\] are not in"):
        edit.delete_episodes(FIXTURE, [7], tmp_path / "bad")


def test_split_and_merge_round_trip(tmp_path):
    parts = edit.split(FIXTURE, {"train": 0.6, "val": 0.4}, tmp_path / "split", seed=1)
    train, val = _consistent(parts["train"]), _consistent(parts["val"])
    assert train.num_episodes == 3 and val.num_episodes == 2
    merged = _consistent(edit.merge([parts["train"], parts["val"]], tmp_path / "merged"))
    src = LeRobotDataset.open(FIXTURE)
    assert merged.num_frames == src.num_frames and sorted(merged.tasks) == sorted(src.tasks)
    with pytest.raises(ValueError, match="sum to 1"):
        edit.split(FIXTURE, {"train": 0.5, "val": 0.3}, tmp_path / "x")


def test_merge_refuses_different_features(tmp_path):
    if not METAWORLD.exists():
        pytest.skip("../shared/fixtures is not beside this checkout (a user's clone)")
    with pytest.raises(DatasetError, match="features or fps differ"):
        edit.merge([FIXTURE, METAWORLD], tmp_path / "out")


def test_recompute_stats_in_place_fixes_wrong_stats(tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(FIXTURE, copy)
    stats_path = copy / "meta/stats.json"
    good = json.loads(stats_path.read_text())
    bad = dict(good, action=dict(good["action"], mean=[9.0] * 6))
    stats_path.write_text(json.dumps(bad))
    edit.recompute_stats(copy)
    fixed = json.loads(stats_path.read_text())
    assert np.allclose(fixed["action"]["mean"], good["action"]["mean"])


def test_cli_dataset_commands(tmp_path, capsys):
    assert main(["dataset", "info", str(FIXTURE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 5
    assert (
        main(["dataset", "delete-episodes", str(FIXTURE), "--episodes", "0", "--out", str(tmp_path / "o")])
        == 0
    )
    assert LeRobotDataset.open(tmp_path / "o").num_episodes == 4
    assert (
        main(["dataset", "delete-episodes", str(FIXTURE), "--episodes", "0", "--out", str(tmp_path / "o")])
        == 2
    )
    assert "not empty" in capsys.readouterr().out  # never overwrites an existing dataset
    assert main(["dataset", "info", str(tmp_path / "missing")]) == 2
