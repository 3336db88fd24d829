"""`embodia dataset export-v21`: v3.0 -> LeRobotDataset v2.1, read back by a LeRobot that reads v2.1.

LeRobot 0.4.4 (the environment of `embodia lerobot setup`) reads only v3.0, so the module fixture puts
LeRobot 0.3.3 (codebase v2.1, the loader openpi's pinned LeRobot commit has) in a folder with
`pip install --no-deps --target`, with the `datasets` 3.6.0 it pins (<= 3.6.0: with the environment's
datasets 4.x, 0.3.3's loader fails on `torch.stack(hf_dataset["timestamp"])`, a Column). Everything
else (torch, torchvision, PyAV) is the LeRobot environment's. tests/in_lerobot_env/read_v21.py runs
there with that folder first on PYTHONPATH and dumps frames as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from embodia.cli import main
from embodia.data.export_v21 import V21_DATA_PATH, V21_VIDEO_PATH, export_v21
from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"
METAWORLD = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "lerobot_v3_metaworld3"
).resolve()
READER = Path(__file__).resolve().parents[1] / "in_lerobot_env" / "read_v21.py"
LEROBOT_V21 = ("lerobot==0.3.3", "datasets==3.6.0")
# Video frames compared as uint8; the cut is a stream copy, so this only bounds decoder differences.
MAX_IMAGE_MEAN_ABS_DIFF = 2.0


@pytest.fixture(scope="module")
def lerobot_v21_site(lerobot_python, tmp_path_factory) -> tuple[Path, Path]:
    """(interpreter, folder for PYTHONPATH): LeRobot 0.3.3 on top of the LeRobot environment."""
    site = tmp_path_factory.mktemp("lerobot_v21_site")
    cmd = [str(lerobot_python), "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    proc = subprocess.run([*cmd, *LEROBOT_V21], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        why = f"`pip install --target {' '.join(LEROBOT_V21)}` failed (no PyPI?): {proc.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(f"CI must read the v2.1 export with LeRobot 0.3.3: {why}")
        pytest.skip(why)
    return lerobot_python, site


def _lerobot_reads(site: tuple[Path, Path], root: Path, indices: list[int], tmp: Path) -> dict:
    python, folder = site
    env = {
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(folder),
        "HF_HOME": str(tmp / "hf"),
        "PATH": "/usr/bin:/bin",
    }
    args = [str(python), "-s", str(READER), str(root), ",".join(map(str, indices)), "--video-backend", "pyav"]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sources() -> list:
    shared = pytest.mark.skipif(not METAWORLD.is_dir(), reason=f"{METAWORLD} absent (../shared not here)")
    return [
        pytest.param(TINY, id="so101_tabletop_tiny"),
        pytest.param(METAWORLD, id="metaworld3", marks=shared),
    ]


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory) -> Path:
    return export_v21(TINY, tmp_path_factory.mktemp("export") / "tiny_v21")


# ------------------------------------------------------------------------------------ layout
def test_export_has_the_v21_layout(tiny_export):
    src = LeRobotDataset.open(TINY)
    info = json.loads((tiny_export / "meta/info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["data_path"] == V21_DATA_PATH and info["video_path"] == V21_VIDEO_PATH
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 476, 5)
    assert (info["total_videos"], info["total_chunks"], info["chunks_size"]) == (10, 1, 1000)
    assert info["fps"] == 30 and info["robot_type"] == "so101_follower" and info["splits"] == {"train": "0:5"}
    assert info["features"] == src.features
    assert not (tiny_export / "meta/stats.json").exists()  # v2.1 aggregates episodes_stats.jsonl
    assert sorted(p.name for p in (tiny_export / "data/chunk-000").iterdir()) == [
        f"episode_{e:06d}.parquet" for e in range(5)
    ]
    for cam in src.camera_keys:
        videos = sorted((tiny_export / "videos/chunk-000" / cam).iterdir())
        assert [v.name for v in videos] == [f"episode_{e:06d}.mp4" for e in range(5)]
    episodes = [json.loads(line) for line in (tiny_export / "meta/episodes.jsonl").read_text().splitlines()]
    assert episodes == [{"episode_index": e["episode_index"], "tasks": e["tasks"], "length": e["length"]}
                        for e in src.episodes]  # fmt: skip
    tasks = [json.loads(line) for line in (tiny_export / "meta/tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": i, "task": t} for i, t in enumerate(src.tasks)]


def test_episode_stats_are_in_v21_shapes(tiny_export):
    lines = (tiny_export / "meta/episodes_stats.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["episode_index"] for r in rows] == list(range(5))
    src = LeRobotDataset.open(TINY)
    for row in rows:
        stats = row["stats"]
        assert set(stats) == set(src.features)
        data = src.episode_data(row["episode_index"])
        for key, s in stats.items():
            assert set(s) == {"min", "max", "mean", "std", "count"}, key
            shape = np.shape(s["mean"])
            if key in src.camera_keys:
                assert shape == (3, 1, 1) and 0 <= np.min(s["min"]) <= np.max(s["max"]) <= 1
            else:
                assert shape == (src.features[key]["shape"][0],)
                np.testing.assert_allclose(
                    s["mean"], data[key].reshape(len(data[key]), -1).mean(0), rtol=1e-5
                )
            n = len(data["index"])
            # Cameras: LeRobot 0.3's sample of frames (all under 100, else n**0.75 within 100..10000).
            sampled = n if n < 100 else max(100, min(int(n**0.75), 10_000))
            assert s["count"] == [sampled if key in src.camera_keys else n], key


def test_embodias_reader_reads_the_export_like_the_source(tiny_export):
    src, out = LeRobotDataset.open(TINY), LeRobotDataset.open(tiny_export)
    assert out.version == "v2.1" and out.num_frames == src.num_frames
    for ep in src.episodes:
        e = ep["episode_index"]
        a, b = src.episode_data(e), out.episode_data(e)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        for cam in src.camera_keys:  # a stream copy: the very same pixels
            np.testing.assert_array_equal(src.episode_frames(e, cam), out.episode_frames(e, cam))


def test_a_cut_that_does_not_check_out_is_re_encoded(tmp_path, monkeypatch):
    """A segment whose stream copy loses frames (a source episode not starting on a keyframe would)
    is decoded by embodia's reader and encoded anew, with the feature's codec."""
    from embodia.data import export_v21 as module

    real = module.extract_segment

    def short_cut(source, from_s, to_s, out):  # drops the segment's last frame
        return real(source, from_s, to_s - 1.5 / 30, out)

    monkeypatch.setattr(module, "extract_segment", short_cut)
    out = export_v21(TINY, tmp_path / "v21")
    src, got = LeRobotDataset.open(TINY), LeRobotDataset.open(out)
    for cam in src.camera_keys:
        a, b = src.episode_frames(4, cam), got.episode_frames(4, cam)
        assert a.shape == b.shape
        assert np.abs(a.astype(float) - b).mean() < 4.0  # lossy: a second AV1 encode


# ------------------------------------------------------------------------------------ LeRobot 0.3.3
@pytest.mark.parametrize("source", _sources())
def test_lerobot_v21_reads_the_export(source, lerobot_v21_site, tmp_path):
    out = export_v21(source, tmp_path / "v21")
    src = LeRobotDataset.open(source)
    indices = sorted({i for ep in src.episodes for i in (ep["dataset_from_index"], (ep["dataset_from_index"] + ep["dataset_to_index"]) // 2, ep["dataset_to_index"] - 1)})  # fmt: skip
    got = _lerobot_reads(lerobot_v21_site, out, indices, tmp_path)
    assert (got["lerobot_version"], got["lerobot_codebase_version"], got["dataset_codebase_version"]) == (
        "0.3.3", "v2.1", "v2.1",
    )  # fmt: skip
    assert (got["num_episodes"], got["num_frames"], got["fps"]) == (src.num_episodes, src.num_frames, src.fps)
    assert got["cameras"] == src.camera_keys
    assert {int(k): v for k, v in got["tasks"].items()} == dict(enumerate(src.tasks))
    for cam in src.camera_keys:
        assert got["stats_shapes"][cam]["mean"] == [3, 1, 1]
    figures = _compare_frames(src, got["frames"])
    print(f"{source.name}: {len(indices)} frames, {figures}")
    assert figures["max_abs_diff"] == {"observation.state": 0.0, "action": 0.0}
    assert figures["image_mean_abs_diff"] <= MAX_IMAGE_MEAN_ABS_DIFF


def _compare_frames(src: LeRobotDataset, frames: dict) -> dict:
    """Every value LeRobot returned against embodia's reader on the v3.0 source; the worst differences."""
    vector_diff = {"observation.state": 0.0, "action": 0.0}
    image_diffs = []
    for index, item in frames.items():
        want = src.frame(int(index))
        assert item["task"] == want["task"]
        for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
            assert np.asarray(item[key]).reshape(()) == want[key], (index, key)
        for key in vector_diff:
            got = np.asarray(item[key], np.float32)
            np.testing.assert_array_equal(got, want[key], err_msg=f"frame {index} {key}")
            vector_diff[key] = max(vector_diff[key], float(np.abs(got - want[key]).max()))
        for cam in src.camera_keys:
            h, w, c = want[cam].shape
            assert item[cam]["shape"] == [c, h, w] and item[cam]["dtype"] == "torch.float32"
            pixels = np.frombuffer(base64.b64decode(item[cam]["uint8_b64"]), np.uint8).reshape(c, h, w)
            image_diffs.append(float(np.abs(pixels.astype(float) - want[cam].transpose(2, 0, 1)).mean()))
            assert item[cam]["mean"] == pytest.approx(
                want[cam].mean() / 255, abs=MAX_IMAGE_MEAN_ABS_DIFF / 255
            )
    return {"max_abs_diff": vector_diff, "image_mean_abs_diff": max(image_diffs)}


# ------------------------------------------------------------------------------------ refusals
def test_refuses_an_existing_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="already exists and is not an empty folder"):
        export_v21(TINY, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "out.partial").exists()


def test_an_empty_out_folder_is_filled(tmp_path):
    (tmp_path / "out").mkdir()
    assert (export_v21(TINY, tmp_path / "out") / "meta/info.json").is_file()
    assert not (tmp_path / "out.partial").exists()


def test_refuses_a_source_that_is_not_v3(tiny_export, tmp_path):
    with pytest.raises(DatasetError, match=r"reads a v3\.0 dataset, found codebase_version 'v2\.1'"):
        export_v21(tiny_export, tmp_path / "again")
    with pytest.raises(ValueError, match="no meta/info.json"):
        export_v21(tmp_path / "nothing", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_refuses_an_out_inside_the_source(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(TINY, src)
    with pytest.raises(ValueError, match="inside the source dataset"):
        export_v21(src, src / "v21")
    assert not (src / "v21").exists() and not (src / "v21.partial").exists()


# ------------------------------------------------------------------------------------ the command
def test_cli_exports_then_refuses(tmp_path, capsys):
    out = tmp_path / "v21"
    assert main(["dataset", "export-v21", str(TINY), str(out)]) == 0
    assert json.loads((out / "meta/info.json").read_text())["codebase_version"] == "v2.1"
    assert "LeRobotDataset v2.1" in capsys.readouterr().out
    assert main(["dataset", "export-v21", str(TINY), str(out)]) == 2  # OUT exists
    assert "already exists" in " ".join(capsys.readouterr().out.split())
    assert main(["dataset", "export-v21", str(out), str(tmp_path / "again")]) == 2  # SRC is v2.1
    assert not (tmp_path / "again").exists()
