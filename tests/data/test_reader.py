"""embodia.data.reader against a real LeRobotDataset v3.0 written by LeRobot itself (shared fixture), a
v2.1 layout converted from it, and copies of it corrupted in the ways real datasets break."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from embodia.data.format import DatasetError
from embodia.data.reader import LeRobotDataset, aggregate_stats

SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared").resolve()
FIXTURE = SHARED / "fixtures" / "lerobot_v3_metaworld3"
CAMS = ["observation.images.corner", "observation.images.corner2"]
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.corner/chunk-000/file-000.mp4"


def copy_fixture(dest: Path) -> Path:
    if not FIXTURE.is_dir():
        pytest.skip(f"LeRobot-written fixture not found at {FIXTURE} (the shared/ folder beside the repo)")
    shutil.copytree(FIXTURE, dest)
    # The fixture is read-only; the copy must be writable so tests can corrupt it.
    for dirpath, _, files in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(Path(dirpath) / f, 0o644)
    return dest


@pytest.fixture(scope="module")
def v3_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_fixture(tmp_path_factory.mktemp("v3") / "ds")


@pytest.fixture(scope="module")
def ds(v3_root: Path) -> LeRobotDataset:
    return LeRobotDataset.open(v3_root)


def decode_all(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


# -- the v3.0 fixture --------------------------------------------------------------------------------


def test_metadata(ds: LeRobotDataset, v3_root: Path) -> None:
    assert (ds.version, ds.fps, ds.robot_type) == ("v3.0", 80, "sawyer")
    assert (ds.num_episodes, ds.num_frames, len(ds)) == (3, 205, 205)
    assert ds.camera_keys == CAMS
    tasks = pq.read_table(v3_root / "meta/tasks.parquet").to_pylist()
    assert ds.tasks == [r["__index_level_0__"] for r in sorted(tasks, key=lambda r: r["task_index"])]
    assert ds.tasks[0] == "press the button from the top"
    assert [ep["length"] for ep in ds.episodes] == [74, 86, 45]
    assert [ep["dataset_from_index"] for ep in ds.episodes] == [0, 74, 160]
    assert ds.episodes[1]["videos"][CAMS[0]]["from_timestamp"] == pytest.approx(0.925)
    assert all(ep["tasks"][0] in ds.tasks for ep in ds.episodes)


def test_episode_data_equals_raw_rows(ds: LeRobotDataset, v3_root: Path) -> None:
    raw = pq.read_table(v3_root / DATA)
    for ep in ds.episodes:
        data = ds.episode_data(ep["episode_index"])
        rows = raw.slice(ep["dataset_from_index"], ep["length"]).to_pydict()
        assert set(data) == set(rows)
        for key, values in rows.items():
            assert np.array_equal(data[key], np.asarray(values, dtype=data[key].dtype)), key
        assert data["observation.state"].shape == (ep["length"], 4)
        assert data["observation.state"].dtype == np.float32 and data["timestamp"].shape == (ep["length"],)
        assert np.array_equal(data["frame_index"], np.arange(ep["length"]))
        assert np.allclose(data["timestamp"], data["frame_index"] / ds.fps, atol=1e-6)
        assert np.all(data["task_index"] == ds.tasks.index(ep["tasks"][0]))
        # Own memory, not views of the file's row group: holding every episode's columns (as the
        # training loader does) must cost the episodes' size, not episodes x file size.
        assert all(v.flags.owndata for v in data.values()), [
            k for k, v in data.items() if not v.flags.owndata
        ]


def test_episode_data_reads_across_row_groups(ds: LeRobotDataset, tmp_path: Path) -> None:
    """Only the row groups overlapping an episode are read; the slice must still start at its first row."""
    root = copy_fixture(tmp_path / "ds")
    pq.write_table(pq.read_table(root / DATA), root / DATA, row_group_size=32)
    assert pq.ParquetFile(root / DATA).metadata.num_row_groups == 7
    split = LeRobotDataset.open(root)
    for e in range(ds.num_episodes):
        a, b = split.episode_data(e), ds.episode_data(e)
        assert all(np.array_equal(a[k], b[k]) for k in b)


def test_reading_every_episode_decodes_a_shared_row_group_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A data file written as one row group (as ours and large LeRobot files are) holds many episodes.
    Reading them one after another (the loader, the doctors) must not decode it per episode; a file
    rewritten since is read again, not served stale."""
    root = copy_fixture(tmp_path / "ds")
    pq.write_table(pq.read_table(root / DATA), root / DATA, row_group_size=1 << 20)
    fresh = LeRobotDataset.open(root)
    reads: list[tuple[int, ...]] = []
    real = pq.ParquetFile.read_row_groups

    def counting(self, row_groups, *args, **kwargs):
        reads.append(tuple(row_groups))
        return real(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", counting)
    assert pq.ParquetFile(root / DATA).metadata.num_row_groups == 1
    first = [fresh.episode_data(e["episode_index"]) for e in fresh.episodes]
    assert reads == [(0,)]

    table = pq.read_table(root / DATA)
    i = table.column_names.index("timestamp")
    doubled = table.set_column(i, "timestamp", pc.multiply(table.column("timestamp"), 2.0))
    pq.write_table(doubled, root / DATA)
    os.utime(root / DATA, ns=(0, 10**9))  # a different mtime even on a coarse-clock filesystem
    again = fresh.episode_data(0)
    assert len(reads) == 2
    assert np.array_equal(again["timestamp"], first[0]["timestamp"] * 2)


def test_episode_frames_cover_each_segment_exactly(ds: LeRobotDataset, v3_root: Path) -> None:
    for cam in CAMS:
        full = decode_all(v3_root / f"videos/{cam}/chunk-000/file-000.mp4")
        assert len(full) == ds.num_frames  # one video frame per data row
        for ep in ds.episodes:
            frames = ds.episode_frames(ep["episode_index"], cam)
            assert frames.shape == (ep["length"], 64, 64, 3) and frames.dtype == np.uint8
            # Seeking into the middle of the file returns exactly the episode's slice of a full decode.
            assert np.array_equal(frames, full[ep["dataset_from_index"] : ep["dataset_to_index"]])
    with pytest.raises(KeyError, match="not a camera"):
        ds.episode_frames(0, "observation.state")


def test_frame_matches_episode_views(ds: LeRobotDataset) -> None:
    for index in (0, 73, 74, 204):
        ep = next(e for e in ds.episodes if e["dataset_from_index"] <= index < e["dataset_to_index"])
        row = index - ep["dataset_from_index"]
        item = ds.frame(index)
        data = ds.episode_data(ep["episode_index"])
        for key, values in data.items():
            assert np.array_equal(item[key], values[row]), key
        assert item["index"] == index and item["task"] == ep["tasks"][0]
        for cam in CAMS:
            assert np.array_equal(item[cam], ds.episode_frames(ep["episode_index"], cam)[row])
    for bad in (-1, 205):
        with pytest.raises(IndexError):
            ds.frame(bad)
    with pytest.raises(IndexError, match="no episode 7"):
        ds.episode_data(7)


def test_stats(ds: LeRobotDataset) -> None:
    for cam in CAMS:
        assert ds.stats[cam]["mean"].shape == (3, 1, 1) and ds.stats[cam]["q99"].shape == (3, 1, 1)
    assert ds.stats["observation.state"]["std"].shape == (4,)
    assert ds.stats["action"]["min"].shape == (4,)
    assert ds.stats["observation.state"]["count"].tolist() == [205]


# -- v2.1 ----------------------------------------------------------------------------------------------


def write_v21(v3: Path, dest: Path, keep_stats_json: bool) -> None:
    """The v3 fixture rewritten in v2.1 layout: one parquet and one mp4 per episode, jsonl metadata."""
    info = json.loads((v3 / "meta/info.json").read_text())
    info.update(
        codebase_version="v2.1",
        data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        total_chunks=1,
        total_videos=3 * len(CAMS),
    )
    for key in ("data_files_size_in_mb", "video_files_size_in_mb"):
        del info[key]
    (dest / "meta").mkdir(parents=True)
    (dest / "meta/info.json").write_text(json.dumps(info, indent=4))
    if keep_stats_json:
        shutil.copy(v3 / "meta/stats.json", dest / "meta/stats.json")
    tasks = pq.read_table(v3 / "meta/tasks.parquet").to_pylist()
    lines = [{"task_index": t["task_index"], "task": t["__index_level_0__"]} for t in tasks]
    (dest / "meta/tasks.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))

    episodes = pq.read_table(v3 / EPISODES).to_pylist()
    ep_lines, stat_lines = [], []
    for ep in episodes:
        ep_lines.append({k: ep[k] for k in ("episode_index", "tasks", "length")})
        stats: dict = {}
        for col, value in ep.items():
            if col.startswith("stats/"):
                feature, stat = col[len("stats/") :].rsplit("/", 1)
                stats.setdefault(feature, {})[stat] = value
        stat_lines.append({"episode_index": ep["episode_index"], "stats": stats})
    (dest / "meta/episodes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in ep_lines))
    (dest / "meta/episodes_stats.jsonl").write_text("".join(json.dumps(x) + "\n" for x in stat_lines))

    # Hugging Face `datasets` v2.x wrote vectors as variable-length lists; do the same.
    data = pq.read_table(v3 / DATA)
    schema = pa.schema(
        [
            pa.field(f.name, pa.list_(pa.float32())) if pa.types.is_fixed_size_list(f.type) else f
            for f in data.schema
        ]
    )
    data = data.cast(schema)
    for ep in episodes:
        e = ep["episode_index"]
        path = dest / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.slice(ep["dataset_from_index"], ep["length"]), path)
        for cam in CAMS:
            out_path = dest / f"videos/chunk-000/{cam}/episode_{e:06d}.mp4"
            out_path.parent.mkdir(parents=True, exist_ok=True)
            remux_segment(v3 / f"videos/{cam}/chunk-000/file-000.mp4", out_path, ep, cam)


def remux_segment(src: Path, dst: Path, ep: dict, cam: str) -> None:
    """Copy the episode's packets into their own mp4 starting at t = 0 (no re-encode: the fixture has a
    keyframe every 2 frames and every episode starts on one)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        out_stream = out.add_stream_from_template(stream, opaque=True)
        lo = round(ep[f"videos/{cam}/from_timestamp"] / stream.time_base)
        hi = round(ep[f"videos/{cam}/to_timestamp"] / stream.time_base)
        for packet in inp.demux(stream):
            if packet.pts is None or not lo <= packet.pts < hi:
                continue
            packet.pts -= lo
            packet.dts -= lo
            packet.stream = out_stream
            out.mux(packet)


@pytest.fixture(scope="module")
def v21_root(v3_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v21") / "ds"
    write_v21(v3_root, root, keep_stats_json=False)
    return root


def test_v21_reads_like_v3(ds: LeRobotDataset, v21_root: Path) -> None:
    old = LeRobotDataset.open(v21_root)
    assert (old.version, old.fps, old.robot_type, old.num_frames) == ("v2.1", 80, "sawyer", 205)
    assert old.tasks == ds.tasks and old.camera_keys == ds.camera_keys
    same = ("episode_index", "length", "tasks", "dataset_from_index", "dataset_to_index")
    for new_ep, old_ep in zip(ds.episodes, old.episodes, strict=True):
        assert {k: old_ep[k] for k in same} == {k: new_ep[k] for k in same}
        assert old_ep["data_file"] == f"data/chunk-000/episode_{old_ep['episode_index']:06d}.parquet"
        assert old_ep["videos"][CAMS[0]]["from_timestamp"] == 0.0
        e = old_ep["episode_index"]
        a, b = old.episode_data(e), ds.episode_data(e)
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
        for cam in CAMS:  # remuxed, so bit-identical
            assert np.array_equal(old.episode_frames(e, cam), ds.episode_frames(e, cam))
    item = old.frame(100)
    assert item["index"] == 100 and np.array_equal(item[CAMS[1]], ds.frame(100)[CAMS[1]])


def test_v21_stats_aggregated_from_episodes(ds: LeRobotDataset, v21_root: Path) -> None:
    agg = LeRobotDataset.open(v21_root).stats  # no stats.json: aggregated from episodes_stats.jsonl
    assert set(agg) == set(ds.stats)
    for key, stats in ds.stats.items():
        for name in ("min", "max", "mean", "std", "count"):
            assert agg[key][name].shape == stats[name].shape, (key, name)
            assert np.allclose(agg[key][name], stats[name], rtol=1e-5, atol=1e-7), (key, name)
    # Two equal halves aggregate to the stats of their union.
    a, b = np.arange(4.0), np.arange(4.0, 8.0)
    halves = [
        {"x": {"min": x.min(), "max": x.max(), "mean": x.mean(), "std": x.std(), "count": [4]}}
        for x in (a, b)
    ]
    whole = aggregate_stats(halves)["x"]
    allx = np.arange(8.0)
    assert whole["mean"] == pytest.approx(allx.mean()) and whole["std"] == pytest.approx(allx.std())
    assert whole["count"].tolist() == [8] and whole["min"] == 0 and whole["max"] == 7


def test_v21_prefers_stats_json(ds: LeRobotDataset, v3_root: Path, tmp_path: Path) -> None:
    write_v21(v3_root, tmp_path / "ds", keep_stats_json=True)
    stats = LeRobotDataset.open(tmp_path / "ds").stats
    assert all(np.array_equal(stats[k][s], ds.stats[k][s]) for k in ds.stats for s in ds.stats[k])


# -- image features (stored in the data parquet) -------------------------------------------------------


def test_image_feature_decoded_from_parquet(ds: LeRobotDataset, v3_root: Path, tmp_path: Path) -> None:
    """A camera stored as PNG images in the data parquet reads back as the same pixels."""
    root = copy_fixture(tmp_path / "ds")
    cam = CAMS[1]
    frames = np.concatenate([ds.episode_frames(e, cam) for e in range(ds.num_episodes)])
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 64, 64, "rgb24"
    pngs = [
        b"".join(bytes(p) for p in encoder.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        for f in frames
    ]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    data = pq.read_table(root / DATA)
    cells = pa.array([{"bytes": b, "path": None} for b in pngs], type=image_type)
    pq.write_table(data.append_column(cam, cells), root / DATA)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][cam]["dtype"] = "image"
    (root / "meta/info.json").write_text(json.dumps(info))

    images = LeRobotDataset.open(root)
    assert images.camera_keys == CAMS and cam not in images.episode_data(0)
    for ep in images.episodes:
        got = images.episode_frames(ep["episode_index"], cam)
        assert np.array_equal(got, frames[ep["dataset_from_index"] : ep["dataset_to_index"]])
    assert np.array_equal(images.frame(80)[cam], frames[80])


# -- bad inputs ------------------------------------------------------------------------------------------


def edit_json(path: Path, **changes: object) -> None:
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def truncate(root: Path) -> None:
    path = root / VIDEO
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])


def rewrite_data(path: Path, fn: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(fn(pq.read_table(path)), path)


def relabel_episode(table: pa.Table) -> pa.Table:
    values = table.column("episode_index").to_numpy().copy()
    values[100] = 0
    return table.set_column(table.schema.get_field_index("episode_index"), "episode_index", pa.array(values))


def shift_episode_range(root: Path) -> None:
    table = pq.read_table(root / EPISODES)
    values = table.column("dataset_from_index").to_numpy().copy()
    values[1] += 1
    column = table.schema.get_field_index("dataset_from_index")
    pq.write_table(table.set_column(column, "dataset_from_index", pa.array(values)), root / EPISODES)


OPEN = None  # the error must come from LeRobotDataset.open itself

# (corruption, file the message must name, what triggers the error after a successful open)
BAD_CASES: dict[str, tuple[Callable[[Path], None], str, Callable[[LeRobotDataset], object] | None]] = {
    "no_info": (lambda r: (r / "meta/info.json").unlink(), "meta/info.json", OPEN),
    "info_not_json": (lambda r: (r / "meta/info.json").write_text("{not json"), "meta/info.json", OPEN),
    "old_version": (
        lambda r: edit_json(r / "meta/info.json", codebase_version="v1.6"),
        "meta/info.json",
        OPEN,
    ),
    "total_episodes": (lambda r: edit_json(r / "meta/info.json", total_episodes=4), "meta/info.json", OPEN),
    "total_frames": (lambda r: edit_json(r / "meta/info.json", total_frames=200), "meta/info.json", OPEN),
    "no_data_file": (lambda r: (r / DATA).unlink(), DATA, OPEN),
    "no_video_file": (lambda r: (r / VIDEO).unlink(), VIDEO, OPEN),
    "no_episodes_file": (lambda r: (r / EPISODES).unlink(), "meta/episodes", OPEN),
    "no_tasks_file": (lambda r: (r / "meta/tasks.parquet").unlink(), "meta/tasks.parquet", OPEN),
    "episode_ranges": (shift_episode_range, EPISODES, OPEN),
    "garbage_episodes": (lambda r: (r / EPISODES).write_bytes(b"PAR1garbagePAR1"), EPISODES, OPEN),
    "garbage_tasks": (
        lambda r: (r / "meta/tasks.parquet").write_bytes(b"garbage"),
        "meta/tasks.parquet",
        OPEN,
    ),
    "garbage_data": (
        lambda r: (r / DATA).write_bytes(b"PAR1" + b"\0" * 64),
        DATA,
        lambda d: d.episode_data(0),
    ),
    "truncated_video": (truncate, VIDEO, lambda d: d.episode_frames(2, CAMS[0])),
    "garbage_video": (
        lambda r: (r / VIDEO).write_bytes(b"\0" * 999),
        VIDEO,
        lambda d: d.episode_frames(0, CAMS[0]),
    ),
    "rows_missing": (
        lambda r: rewrite_data(r / DATA, lambda t: t.slice(0, 180)),
        DATA,
        lambda d: d.episode_data(2),
    ),
    "rows_relabelled": (lambda r: rewrite_data(r / DATA, relabel_episode), DATA, lambda d: d.episode_data(1)),
}


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_raises_naming_the_file(case: str, tmp_path: Path) -> None:
    corrupt, names, trigger = BAD_CASES[case]
    root = copy_fixture(tmp_path / "ds")
    corrupt(root)
    before = snapshot(root)
    with pytest.raises(DatasetError) as err:
        ds = LeRobotDataset.open(root)
        assert trigger is not None, "open() accepted a dataset it should have rejected"
        trigger(ds)
    assert str(root / names) in str(err.value), err.value
    if case == "old_version":
        assert "v1.6" in str(err.value) and "v3.0, v2.1" in str(err.value)
    assert snapshot(root) == before  # the reader never writes


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset root not found"):
        LeRobotDataset.open(tmp_path / "nowhere")


def test_v21_bad_jsonl_names_file_and_line(v21_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(v21_root, root)
    path = root / "meta/episodes.jsonl"
    path.write_text(path.read_text() + "{broken\n")
    with pytest.raises(DatasetError, match=r"episodes\.jsonl: line 4 is not valid JSON"):
        LeRobotDataset.open(root)
