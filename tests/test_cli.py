import json
import re

import pytest

from embodia.cli import main


def test_demo_with_a_checkpoint_writes_videos_report_and_manifest(
    tmp_path, monkeypatch, capsys, tiny_policy_dir
):
    monkeypatch.chdir(tmp_path)
    argv = ["demo", "--checkpoint", str(tiny_policy_dir), "--max-steps", "12", "--episodes", "5"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    # The measured success on fixed seeds 0..N-1, with its interval: never chosen seeds.
    assert re.search(
        r"\d/5 succeeded: \d+\.\d% \(Wilson 95 % interval \d+\.\d%-\d+\.\d%\) on seeds 0..4", out
    )
    (run,) = (tmp_path / "embodia_runs" / "demo").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert [e["seed"] for e in results["episodes"]] == [0, 1, 2, 3, 4]
    assert [e["task"] for e in results["episodes"]] == ["pick", "push", "stack", "touch", "pick"]
    videos = sorted((run / "videos").glob("*.mp4"))
    assert len(videos) == 4 and all(v.stat().st_size > 1000 for v in videos)  # one per family
    html = (run / "report.html").read_text()
    assert html.count("<video") == 4 and "embodia demo" in html
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == "demo" and manifest["seeds"] == [0, 1, 2, 3, 4]
    assert manifest["versions"]["mujoco"] == "3.3.0" and "git_sha" in manifest
    assert len(manifest["inputs"]["checkpoint_hash"]) == 64


def test_run_free_text_instruction(tmp_path, monkeypatch, capsys, tiny_policy_dir):
    monkeypatch.chdir(tmp_path)
    code = main(
        ["run", "could you lift the blue block", "--checkpoint", str(tiny_policy_dir), "--max-steps", "10"]
    )
    assert code in (0, 3)  # 3: ran fine, task not achieved (an untrained policy)
    out = capsys.readouterr().out
    assert "lift the blue block" in out
    (run,) = (tmp_path / "embodia_runs" / "run").iterdir()
    assert (run / "00_pick.mp4").stat().st_size > 1000
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["inputs"]["scene_task"] == "lift the blue block"


def test_bad_cli_input_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--family", "juggle"]) == 2
    assert "valid task families" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert not (tmp_path / "embodia_runs").exists()  # nothing half-written


def test_train_weights_must_match_the_datasets(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):  # argparse: not a list of positive numbers
        main(["train", "a", "b", "--weights", "1,zero"])
    assert "comma-separated positive numbers" in capsys.readouterr().err
    assert main(["train", "a", "b", "--weights", "1,2,3"]) == 2
    assert "3 entries for 2 datasets" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert not (tmp_path / "embodia_runs").exists()
    with pytest.raises(SystemExit):
        main(["train", "a", "--paraphrase", "2"])
    assert "probability between 0 and 1, got 2.0" in capsys.readouterr().err


def test_demo_runs_the_shipped_base_end_to_end(tmp_path, monkeypatch, capsys):
    """The one test that uses the shipped weights: the README's main command works from a clean tree
    (episodes capped so that it stays quick; success is not asserted)."""
    from embodia.policy.policy import BASE_DIR

    assert (BASE_DIR / "model.safetensors").exists(), "the pretrained base must ship inside the package"
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--max-steps", "40"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "VLA shipped base" in out and re.search(r"\d+/20 succeeded: .* on seeds 0..19", out)
    (run,) = (tmp_path / "embodia_runs" / "demo").iterdir()
    assert len(list((run / "videos").glob("*.mp4"))) == 4 and (run / "report.html").exists()


@pytest.mark.parametrize(
    ("argv", "address"),
    [([], None), (["--ray"], "local"), (["--ray", "auto"], "auto"), (["--ray", "--episodes", "3"], "local")],
)
def test_a_bare_ray_flag_means_a_private_local_cluster(argv, address):
    from embodia.cli import parse

    _, options = parse(["eval", "base", *argv])
    assert options.eval.ray == address
