import json

from embodia.cli import main


def test_demo_writes_video_and_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--family", "touch", "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "scripted expert" in out  # says plainly that no trained policy drives the demo
    (run,) = (tmp_path / "embodia_runs" / "demo").iterdir()
    assert (run / "touch.mp4").stat().st_size > 1000
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == "demo" and manifest["inputs"]["families"] == ["touch"]
    assert manifest["versions"]["mujoco"] == "3.3.0" and "git_sha" in manifest


def test_bad_cli_input_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--family", "juggle"]) == 2
    assert "valid task families" in capsys.readouterr().out
    assert not (tmp_path / "embodia_runs").exists()  # nothing half-written
