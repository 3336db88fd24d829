"""`embodia view`'s HTTP API, driven with FastAPI's TestClient (no browser): what it finds under a root,
what each endpoint reports, Range requests on videos, and that no path escapes the served folder."""

from __future__ import annotations

import json
import os

import pytest
from fastapi.testclient import TestClient
from viewer_outputs import copy_dataset, make_eval, make_fake_run

from embodia.cli import main, parse
from embodia.view.viewer import create_viewer_app

VIDEO = "datasets/tiny/videos/observation.images.front/chunk-000/file-000.mp4"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A served folder holding a dataset (with a doctor output that flags it), an eval and a run."""
    base = tmp_path_factory.mktemp("viewer")
    root = base / "served"
    ds = copy_dataset(root / "datasets" / "tiny")
    make_eval(root / "embodia_runs" / "eval" / "e1")
    make_fake_run(root / "embodia_runs" / "train" / "t1")
    # A doctor output for the dataset, named by a path relative to the root as the CLI would write it
    # when run from there: one FAIL in episode 2, one dataset-wide WARN.
    doc = root / "embodia_runs" / "doctor" / "d1"
    doc.mkdir(parents=True)
    checks = [
        {"name": "actions.jumps", "severity": "FAIL", "summary": "1 jump", "findings": [
            {"severity": "FAIL", "episode": 2, "frames": [[10, 12]], "message": "action jumps by 2 rad"}]},
        {"name": "stats.agreement", "severity": "WARN", "summary": "stale", "findings": [
            {"severity": "WARN", "episode": None, "frames": [], "message": "stats.json is stale"}]},
        {"name": "timestamps.gaps", "severity": "PASS", "summary": "ok", "findings": []},
    ]  # fmt: skip
    (doc / "doctor.json").write_text(json.dumps({"root": str(ds), "severity": "FAIL", "checks": checks,
                                                 "counts": {"FAIL": 1, "WARN": 1, "PASS": 1}}))  # fmt: skip
    (doc / "report.html").write_text("<!DOCTYPE html><title>doctor</title>")
    # Outside the root: a secret, and symlinks inside the root pointing at it and at its folder.
    (base / "secret.txt").write_text("do not serve")
    (root / "link_file.txt").symlink_to(base / "secret.txt")
    (root / "link_dir").symlink_to(base, target_is_directory=True)
    (root / ".env").write_text("do not serve")  # hidden files are never outputs
    return root


@pytest.fixture(scope="module")
def client(root):
    # Host 127.0.0.1: the app answers loopback Host headers only (DNS-rebinding guard).
    return TestClient(create_viewer_app(root), base_url="http://127.0.0.1")


def test_index_finds_dataset_eval_run_and_doctor(client, root):
    idx = client.get("/api/index").json()
    assert [d["path"] for d in idx["datasets"]] == ["datasets/tiny"]
    ds = idx["datasets"][0]
    assert ds["total_episodes"] == 5 and ds["fps"] == 30
    assert ds["doctor"] == "embodia_runs/doctor/d1" and ds["doctor_severity"] == "FAIL"
    assert [e["path"] for e in idx["evals"]] == ["embodia_runs/eval/e1"]
    assert idx["evals"][0]["suite"] == "touch,pick" and idx["evals"][0]["n"] == 4
    assert [r["path"] for r in idx["runs"]] == ["embodia_runs/train/t1"]
    assert idx["runs"][0]["final"] is True
    reports = {r["path"] for r in idx["reports"]}
    assert {"embodia_runs/eval/e1/report.html", "embodia_runs/doctor/d1/report.html"} <= reports
    assert idx["truncated"] is False
    # The symlinked folder points outside: the walk does not follow it, so nothing is found twice.
    assert not any(p["path"].startswith("link_dir") for k in ("datasets", "evals", "runs") for p in idx[k])


def test_dataset_lists_episodes_with_tasks_and_doctor_flags(client):
    ds = client.get("/api/dataset", params={"path": "datasets/tiny"}).json()
    assert ds["fps"] == 30 and ds["cameras"] == ["observation.images.front", "observation.images.wrist"]
    assert [e["length"] for e in ds["episodes"]] == [80, 125, 84, 137, 50]
    assert ds["episodes"][0]["tasks"] == ["pick the blue block up off the table"]
    assert [e["flag"] for e in ds["episodes"]] == [None, None, "FAIL", None, None]
    assert ds["doctor"]["severity"] == "FAIL"
    assert ds["doctor"]["dataset_flags"][0]["message"] == "stats.json is stale"


def test_episode_gives_series_and_video_ranges(client):
    ep = client.get("/api/dataset/episode", params={"path": "datasets/tiny", "episode": 2}).json()
    assert ep["length"] == 84 and ep["fps"] == 30
    assert len(ep["state"]["values"]) == 6 and len(ep["state"]["values"][0]) == 84
    assert ep["state"]["names"][0] == "shoulder_pan.pos" and len(ep["action"]["values"][5]) == 84
    front = {v["camera"]: v for v in ep["videos"]}["observation.images.front"]
    assert front["file"] == VIDEO
    # Episodes 0 and 1 (80 + 125 frames at 30 fps) come first in the shared mp4.
    assert front["from"] == pytest.approx(205 / 30) and front["to"] == pytest.approx(289 / 30)
    assert [f["check"] for f in ep["flags"]] == ["actions.jumps"]


def test_eval_gives_success_tables_and_videos(client):
    ev = client.get("/api/eval", params={"path": "embodia_runs/eval/e1"}).json()
    assert set(ev["tasks"]) == {"touch", "pick"} and set(ev["groups"]) == {"touch", "pick"}
    assert ev["overall"]["n"] == 4 and len(ev["overall"]["ci95"]) == 2
    assert ev["failures"] == {"touch": {"never reached": 2}, "pick": {"never reached": 2}}
    assert ev["measures"] == {}  # the arm never closed its jaw near a block
    assert {e["failure"] for e in ev["episodes"]} == {"never reached"}
    filmed = [e["video"] for e in ev["episodes"] if e["video"]]
    assert len(filmed) == 2 and all(v.startswith("embodia_runs/eval/e1/videos/") for v in filmed)
    assert ev["report"] == "embodia_runs/eval/e1/report.html"
    r = client.get("/files/" + filmed[0])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content[4:8] == b"ftyp"


def test_run_gives_curves_and_checkpoints(client):
    run = client.get("/api/run", params={"path": "embodia_runs/train/t1"}).json()
    assert run["steps"] == list(range(1, 31)) and run["curves"]["loss"][0] == pytest.approx(2.0)
    assert len(run["curves"]["lr"]) == 30 and run["bad_lines"] == 1  # the half-written last line
    assert [c["name"] for c in run["checkpoints"]] == ["step-0000010", "step-0000020", "final"]
    assert [c["step"] for c in run["checkpoints"][:2]] == [10, 20] and run["latest"] == "step-0000020"
    assert all(c["complete"] for c in run["checkpoints"])


def test_video_range_request_is_partial(client, root):
    size = (root / VIDEO).stat().st_size
    r = client.get("/files/" + VIDEO, headers={"Range": "bytes=100-1099"})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 100-1099/{size}"
    assert r.content == (root / VIDEO).read_bytes()[100:1100]
    assert r.headers["accept-ranges"] == "bytes"
    tail = client.get("/files/" + VIDEO, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and len(tail.content) == 10


@pytest.mark.parametrize(
    "url, status, words",
    [
        ("/files/..%2F..%2Fsecret.txt", 403, "outside the served folder"),
        ("/files/datasets/..%2F..%2F..%2Fsecret.txt", 403, "outside the served folder"),
        ("/files/%2Fetc%2Fpasswd", 403, "absolute paths are not served"),
        ("/files/link_file.txt", 403, "outside the served folder"),
        ("/files/link_dir/secret.txt", 403, "outside the served folder"),
        ("/api/dataset?path=..", 403, "outside the served folder"),
        ("/api/dataset?path=link_dir", 403, "outside the served folder"),
        ("/api/run?path=%2Ftmp", 403, "absolute paths are not served"),
        ("/files/.env", 403, "hidden files are not served"),
    ],
)
def test_paths_cannot_escape_the_root(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert "do not serve" not in r.text


@pytest.mark.parametrize(
    "url, status, words",
    [
        ("/api/dataset?path=nowhere", 404, "does not exist"),
        ("/api/dataset?path=embodia_runs", 404, "not a LeRobotDataset"),
        ("/api/eval?path=datasets/tiny", 404, "no embodia results.json"),
        ("/api/run?path=datasets", 404, "not a training run"),
        ("/api/run?path=embodia_runs/train/t1/metrics.jsonl", 400, "is a file"),
        ("/api/dataset/episode?path=datasets/tiny&episode=99", 404, "no episode 99"),
        ("/files/datasets", 404, "is a folder"),
        ("/api/nothing", 404, "no such endpoint"),
    ],
)
def test_bad_paths_are_clear_4xx(client, url, status, words):
    r = client.get(url)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_missing_query_is_422(client):
    assert client.get("/api/dataset").status_code == 422


def test_foreign_host_header_is_refused(root):
    """A page on evil.example rebinding its name to 127.0.0.1 sends Host: evil.example."""
    r = TestClient(create_viewer_app(root), base_url="http://evil.example").get("/api/index")
    assert r.status_code == 421
    ok = TestClient(create_viewer_app(root), base_url="http://localhost:8765").get("/api/index")
    assert ok.status_code == 200


def test_front_end_is_served_without_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "viewer.js" in page.text
    js = client.get("/static/viewer.js")
    assert js.status_code == 200 and "linePlot" in js.text
    assert "http://" not in js.text and "https://" not in js.text  # nothing fetched from elsewhere
    assert client.get("/static/viewer.css").status_code == 200


def test_a_dataset_root_itself_is_browsable(root):
    client = TestClient(create_viewer_app(root / "datasets" / "tiny"), base_url="http://127.0.0.1")
    idx = client.get("/api/index").json()
    assert [d["path"] for d in idx["datasets"]] == ["."]
    assert client.get("/api/dataset", params={"path": "."}).json()["frames"] == 476


def test_cli_view_parses_and_refuses_public_hosts(tmp_path, capsys):
    _, args = parse(["view"])
    assert (args.path, args.port, args.host) == (".", 8765, "127.0.0.1")
    _, args = parse(["view", str(tmp_path), "--port", "9000"])
    assert args.path == str(tmp_path) and args.port == 9000
    assert main(["view", str(tmp_path), "--host", "0.0.0.0"]) == 2
    assert "no authentication" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "not a folder" in " ".join(capsys.readouterr().out.split())  # the path's length moves the wrap


def test_cli_view_busy_port_is_a_clear_error(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["view", str(tmp_path), "--port", str(port)]) == 2
    assert "pick another --port" in " ".join(capsys.readouterr().out.split())


def test_static_files_ship_with_the_package():
    """pyproject's package-data must carry the front end into wheels (not only editable installs)."""
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["embodia"]
    static = Path(__file__).parents[2] / "src" / "embodia" / "view" / "static"
    files = sorted(p.relative_to(static.parents[1]).as_posix() for p in static.iterdir())
    assert files == [
        "view/static/index.html",
        "view/static/teleop.js",
        "view/static/viewer.css",
        "view/static/viewer.js",
    ]
    from fnmatch import fnmatch

    assert all(any(fnmatch(f, pat) for pat in patterns) for f in files)
    assert os.path.getsize(static / "viewer.js") > 1000
