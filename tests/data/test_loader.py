"""The training loader: LeRobot chunk semantics, batched fetch, frame cache and its invalidation."""

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from embodia.data.loader import TrainingDataset, collate, dataset_fingerprint
from embodia.data.transforms import ImageAugment
from embodia.data.video import decode_all

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"


def test_sample_matches_dataset_with_padded_chunks(tmp_path):
    ds = TrainingDataset(FIXTURE, chunk_size=16, cache_dir=tmp_path)
    data = pq.read_table(FIXTURE / "data/chunk-000/file-000.parquet").to_pydict()
    action = np.array(data["action"], np.float32)
    ep0 = ds.ds.episodes[0]
    last = ep0["dataset_to_index"] - 1
    s = ds[last - 2]  # three real actions left in the episode
    assert s["action_is_pad"].tolist() == [False] * 3 + [True] * 13
    assert np.array_equal(s["action"][:3].numpy(), action[last - 2 : last + 1])
    assert np.array_equal(
        s["action"][3:].numpy(), np.repeat(action[last][None], 13, 0)
    )  # clamped, like LeRobot
    s = ds[10]
    assert not s["action_is_pad"].any() and np.array_equal(s["action"].numpy(), action[10:26])
    assert np.array_equal(s["observation.state"].numpy(), np.array(data["observation.state"][10], np.float32))
    front = decode_all(FIXTURE / "videos/observation.images.front/chunk-000/file-000.mp4")
    assert np.array_equal(s["observation.images.front"].permute(1, 2, 0).numpy(), front[10])
    assert s["task"] == ds.ds.tasks[data["task_index"][10]]


def test_batched_fetch_equals_per_sample_collate(tmp_path):
    ds = TrainingDataset(FIXTURE, chunk_size=8, cache_dir=tmp_path)
    idx = [300, 5, 77, 5]
    a, b = collate([ds[i] for i in idx]), ds.__getitems__(idx)
    for key in a:
        if key == "task":
            assert a[key] == b[key]
        else:
            assert torch.equal(torch.as_tensor(a[key]), torch.as_tensor(b[key])), key
    loader = DataLoader(ds, batch_size=32, shuffle=True, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["action"].shape == (32, 8, 6) and batch["observation.images.wrist"].shape == (32, 3, 64, 64)


def test_augmentation_shapes_ranges_and_determinism(tmp_path):
    ds = TrainingDataset(FIXTURE, chunk_size=4, cache_dir=tmp_path)
    batch = ds.__getitems__(list(range(16)))
    cams = ds.cameras
    a = ImageAugment(cams)(batch, torch.Generator().manual_seed(0))
    b = ImageAugment(cams)(batch, torch.Generator().manual_seed(0))
    c = ImageAugment(cams)(batch, torch.Generator().manual_seed(1))
    for key in cams:
        assert a[key].dtype == torch.float32 and a[key].shape == (16, 3, 64, 64)
        assert a[key].min() >= 0.0 and a[key].max() <= 1.0
        assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
        assert not torch.equal(a[key], batch[key].float() / 255)  # it did something
    assert torch.equal(a["action"], batch["action"])  # only images are augmented


def test_cache_is_invalidated_when_the_dataset_changes(tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(FIXTURE, copy)
    before = dataset_fingerprint(copy)
    TrainingDataset(copy, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / before).is_dir()
    info = copy / "meta/info.json"
    info.write_text(info.read_text() + "\n")
    after = dataset_fingerprint(copy)
    assert after != before
    TrainingDataset(copy, cache_dir=tmp_path / "cache")
    assert (tmp_path / "cache" / after).is_dir()
    # The stale version is gone; another dataset's cache and a cache of unknown origin are kept.
    assert not (tmp_path / "cache" / before).exists()


def test_only_stale_versions_of_a_dataset_folder_are_pruned(tmp_path):
    cache = tmp_path / "cache"
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    shutil.copytree(FIXTURE, a)
    shutil.copytree(FIXTURE, b)  # an identical copy (mtimes kept): it shares a's cache
    shutil.copytree(FIXTURE, c)
    (c / "meta/info.json").write_text((c / "meta/info.json").read_text() + "\n")  # another dataset
    (cache / "legacy").mkdir(parents=True)  # built before caches recorded their source
    for root in (a, b, c):
        TrainingDataset(root, cache_dir=cache)
    shared, fc = dataset_fingerprint(a), dataset_fingerprint(c)
    assert shared == dataset_fingerprint(b) and shared != fc
    assert {p.name for p in cache.iterdir()} == {"legacy", shared, fc}

    # a changes: the shared cache still serves b, so it stays.
    (a / "meta/info.json").write_text((a / "meta/info.json").read_text() + " \n")
    ds = TrainingDataset(a, cache_dir=cache)
    fa = dataset_fingerprint(a)
    assert ds.frames and ds.frames[next(iter(ds.frames))].shape[0] == ds.ds.num_frames
    assert {p.name for p in cache.iterdir()} == {"legacy", shared, fc, fa}

    # b changes too: nothing serves the shared cache any more, so it goes; c's and legacy stay.
    (b / "meta/info.json").write_text((b / "meta/info.json").read_text() + "  \n")
    TrainingDataset(b, cache_dir=cache)
    assert {p.name for p in cache.iterdir()} == {"legacy", fc, fa, dataset_fingerprint(b)}
    TrainingDataset(a, cache_dir=cache)  # loading again removes nothing
    assert (cache / fa).is_dir()


def test_two_runs_building_one_cache_at_once_both_get_it(tmp_path, monkeypatch):
    """Two trainings on one machine (or two workers of a cluster) may decode the same dataset into the
    same cache at the same time: each writes a temporary file of its own and both end with the frames."""
    import threading

    from embodia.data.loader import FrameCache
    from embodia.data.reader import LeRobotDataset

    barrier = threading.Barrier(2, timeout=30)
    decode = LeRobotDataset.episode_frames
    first: set[int] = set()

    def both_mid_build(self, episode, key):
        if threading.get_ident() not in first:  # both threads have started writing before either ends
            first.add(threading.get_ident())
            barrier.wait()
        return decode(self, episode, key)

    monkeypatch.setattr(LeRobotDataset, "episode_frames", both_mid_build)
    caches, errors = [], []

    def build():
        try:
            caches.append(FrameCache(LeRobotDataset.open(FIXTURE), tmp_path))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(caches) == 2
    ds = LeRobotDataset.open(FIXTURE)
    for key in ds.camera_keys:
        want = decode(ds, 0, key)
        for cache in caches:
            np.testing.assert_array_equal(cache.arrays[key][: len(want)], want)
    assert not list(caches[0].dir.glob(".*.tmp"))  # no temporary file left behind


def test_a_builder_killed_mid_decode_leaves_no_file_for_long(tmp_path):
    """The next build removes the temporary files of builders that died on this machine; a live
    builder's file and another machine's (a cache on a shared disk) stay."""
    import os
    import subprocess
    import sys

    from embodia.data import loader
    from embodia.data.loader import FrameCache, dataset_fingerprint
    from embodia.data.reader import LeRobotDataset

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / dataset_fingerprint(FIXTURE)
    folder.mkdir()
    key = LeRobotDataset.open(FIXTURE).camera_keys[0]
    orphan = folder / f".{key}.u8.{loader._HOST}.{dead.pid}.0123abcd.tmp"
    live = folder / f".{key}.u8.{loader._HOST}.{os.getpid()}.89abcdef.tmp"
    elsewhere = folder / f".{key}.u8.other-host.{dead.pid}.0123abcd.tmp"
    for f in (orphan, live, elsewhere):
        f.write_bytes(b"half-decoded")
    FrameCache(LeRobotDataset.open(FIXTURE), tmp_path)
    assert not orphan.exists() and live.exists() and elsewhere.exists()
