"""embodia.data.verify and `embodia dataset info --verify` (issue 25, item 7): a full read finds a
truncated or short parquet and a damaged or truncated mp4, naming the file; sound datasets pass, the
committed tiny one and the one LeRobot wrote itself."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embodia.cli import main
from embodia.data.verify import Problem, verify

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "so101_tabletop_tiny"
METAWORLD = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "lerobot_v3_metaworld3"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
FRONT = "videos/observation.images.front/chunk-000/file-000.mp4"
WRIST = "videos/observation.images.wrist/chunk-000/file-000.mp4"


def copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    for dirpath, _, files in os.walk(dest):  # writable, so that tests can damage it
        os.chmod(dirpath, 0o755)
        for f in files:
            os.chmod(Path(dirpath) / f, 0o644)
    return dest


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def overwrite_middle(path: Path, n: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(n)
    path.write_bytes(bytes(data))


def run_info(root: Path, capsys: pytest.CaptureFixture, *flags: str) -> tuple[int, str]:
    code = main(["dataset", "info", str(root), *flags])
    return code, capsys.readouterr().out


def test_the_tiny_fixture_is_sound(capsys):
    assert verify(TINY) == []
    code, out = run_info(TINY, capsys, "--verify")
    assert code == 0
    assert "verified: every parquet file read in full and every video frame decoded; no" in out
    assert "476" in out  # the summary is still printed


def test_info_without_verify_says_it_did_not_read_everything(capsys):
    code, out = run_info(TINY, capsys)
    assert code == 0
    assert "not verified: only the metadata was read" in out and "pass --verify" in out
    code, out = run_info(TINY, capsys, "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["verified"], summary["problems"], summary["frames"]) == (False, [], 476)


def test_the_lerobot_written_dataset_is_sound(capsys):
    if not METAWORLD.is_dir():
        pytest.skip(f"shared fixture absent: {METAWORLD} (the LeRobot-written Meta-World dataset)")
    assert verify(METAWORLD) == []
    assert run_info(METAWORLD, capsys, "--verify")[0] == 0


@pytest.mark.parametrize(
    ("damage", "target", "expected"),
    [
        (truncate, DATA, "unreadable parquet"),
        (truncate, FRONT, "corrupt or truncated video"),
        (overwrite_middle, WRIST, "corrupt or truncated video"),
    ],
    ids=["truncated parquet", "truncated mp4", "overwritten mp4"],
)
def test_verify_names_the_damaged_file(damage, target, expected, tmp_path, capsys):
    root = copy(TINY, tmp_path / "ds")
    damage(root / target)
    problems = verify(root)
    assert [p.file for p in problems] == [root / target], problems
    assert expected in problems[0].what
    code, out = run_info(root, capsys, "--verify")
    assert code == 1
    assert "1 problem(s)" in out and f"{root / target}: {expected}" in out
    code, out = run_info(root, capsys, "--verify", "--json")
    assert code == 1
    assert json.loads(out)["problems"] == [str(problems[0])]


def test_a_short_but_readable_parquet_is_counted(tmp_path):
    root = copy(TINY, tmp_path / "ds")
    table = pq.read_table(root / DATA)
    pq.write_table(table.slice(0, table.num_rows - 10), root / DATA)
    problems = verify(root)
    assert problems == [
        Problem(root / DATA, "has 466 rows, but episodes 0, 1, 2, 3, 4 in meta/episodes have 476 frames")
    ]


def test_rows_that_disagree_with_the_episode_ranges(tmp_path):
    root = copy(TINY, tmp_path / "ds")
    table = pq.read_table(root / DATA)
    # Swap two rows of episode 0: still 476 rows, but index and frame_index are out of place.
    order = [1, 0, *range(2, table.num_rows)]
    pq.write_table(table.take(order), root / DATA)
    whats = [p.what for p in verify(root)]
    assert "column index: row 0 holds 1, meta/episodes implies 0" in whats
    assert "column frame_index: row 0 holds 1, meta/episodes implies 0" in whats
    assert len(whats) == 3  # and timestamp; one finding per column, the file's row count is right


def test_a_video_missing_its_last_episode(tmp_path):
    from embodia.data.video import extract_segment

    root = copy(TINY, tmp_path / "ds")
    # A valid mp4 that stops where the last episode starts (a crash before its video was written).
    last = json.loads((root / "meta/info.json").read_text())["total_frames"]
    eps = pq.read_table(root / EPISODES).to_pylist()
    start = eps[-1]["videos/observation.images.front/from_timestamp"]
    short = tmp_path / "short.mp4"
    extract_segment(root / FRONT, 0.0, start, short)
    shutil.copy(short, root / FRONT)
    problems = verify(root)
    assert [p.file for p in problems] == [root / FRONT]
    assert problems[0].what.startswith(
        f"episode {eps[-1]['episode_index']} (observation.images.front): no frame"
    )
    assert last == 476


def test_broken_metadata_is_a_problem_not_a_crash(tmp_path, capsys):
    root = copy(TINY, tmp_path / "ds")
    truncate(root / EPISODES)
    problems = verify(root)
    assert len(problems) == 1 and problems[0].file == root / EPISODES
    assert "unreadable parquet" in problems[0].what
    code, out = run_info(root, capsys, "--verify")
    assert code == 1 and str(root / EPISODES) in out


def test_a_missing_root_is_an_error_and_a_hub_id_is_pulled_first(tmp_path, monkeypatch, capsys):
    from embodia.hub import HubError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an id not in the cache: an error, not a problem found
    with pytest.raises(HubError, match="'lerobot/pusht' is not in the local Hub cache"):
        verify("lerobot/pusht")
    code, out = run_info(Path("lerobot/pusht"), capsys, "--verify")
    assert code == 2
    assert "'lerobot/pusht' is not in the local Hub cache" in out and "HF_HUB_OFFLINE=1" in out
    assert verify(tmp_path / "gone") == [Problem(tmp_path / "gone", "dataset root not found")]
