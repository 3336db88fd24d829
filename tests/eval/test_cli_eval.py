"""`embodia eval`: loads the policy lazily, runs the evaluation, prints the table and where files are."""

from __future__ import annotations

import json
import sys
import types

import pytest

from embodia.cli import main


def test_cli_eval_runs_and_reports(tmp_path, monkeypatch, capsys, hold_policy):
    loaded = []

    class FakePolicy:
        @staticmethod
        def from_pretrained(path, device="cpu"):
            loaded.append(path)
            return hold_policy(chunk_size=4, n_action_steps=4)

    # embodia.policy.policy is written elsewhere; stand in for it so this test pins only the CLI.
    monkeypatch.setitem(sys.modules, "embodia.policy.policy", types.SimpleNamespace(Policy=FakePolicy))
    out = tmp_path / "ev"
    argv = ["eval", "ckpt-dir", "--suite", "touch", "--episodes", "1", "--num-envs", "1", "--max-steps", "4"]
    assert main([*argv, "--image-size", "32", "--videos", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.replace("\n", "")  # rich may fold long paths
    assert loaded == ["ckpt-dir"]
    assert "overall" in printed and "report.html" in printed and "results.json" in printed
    data = json.loads((out / "results.json").read_text())
    assert data["suite"] == "touch" and data["max_steps"] == 4 and data["overall"]["n"] == 1
    assert (out / "report.html").exists() and len(list((out / "videos").glob("*.mp4"))) == 1


def test_cli_eval_bad_suite_is_a_clear_error(tmp_path, monkeypatch, capsys, hold_policy):
    policy_module = types.SimpleNamespace(
        Policy=types.SimpleNamespace(from_pretrained=lambda path, device="cpu": hold_policy())
    )
    monkeypatch.setitem(sys.modules, "embodia.policy.policy", policy_module)
    assert main(["eval", "x", "--suite", "juggle", "--out", str(tmp_path / "ev")]) == 2
    assert "valid: 'tabletop'" in " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert not (tmp_path / "ev").exists()  # nothing half-written


def test_cli_eval_overrides_the_flow_sampler_and_records_it(tmp_path, monkeypatch, capsys, hold_policy):
    policies = []

    def load(path, head="flow", device="cpu"):
        policy = hold_policy(chunk_size=4, n_action_steps=4)
        policy.cfg = types.SimpleNamespace(head=head, flow_steps=3, flow_noise_scale=1.0)
        policies.append(policy)
        return policy

    monkeypatch.setitem(
        sys.modules,
        "embodia.policy.policy",
        types.SimpleNamespace(Policy=types.SimpleNamespace(from_pretrained=load)),
    )
    argv = ["eval", "ckpt", "--suite", "touch", "--episodes", "1", "--num-envs", "1", "--max-steps", "2"]
    out = tmp_path / "ev"
    assert (
        main([*argv, "--videos", "0", "--flow-steps", "5", "--noise-scale", "0.25", "--out", str(out)]) == 0
    )
    assert (policies[0].cfg.flow_steps, policies[0].cfg.flow_noise_scale) == (5, 0.25)
    data = json.loads((out / "results.json").read_text())
    assert (data["flow_steps"], data["flow_noise_scale"]) == (5, 0.25)
    assert (data["ensemble"], data["replan_every"]) == (None, 4)
    assert main([*argv, "--videos", "0", "--ensemble", "0.01", "--out", str(tmp_path / "ens")]) == 0
    data = json.loads((tmp_path / "ens" / "results.json").read_text())
    assert (data["ensemble"], data["replan_every"]) == (0.01, 1)

    with pytest.raises(SystemExit):  # argparse: outside 0..1
        main([*argv, "--noise-scale", "1.5"])
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["eval", "http://127.0.0.1:9/", "--noise-scale", "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "samples on the server" in capsys.readouterr().out.replace("\n", " ")

    monkeypatch.setitem(
        sys.modules,
        "embodia.policy.policy",
        types.SimpleNamespace(
            Policy=types.SimpleNamespace(from_pretrained=lambda p, device="cpu": load(p, head="l1"))
        ),
    )
    assert main([*argv, "--flow-steps", "2", "--out", str(tmp_path / "y")]) == 2
    assert "flow-matching head" in " ".join(capsys.readouterr().out.split())  # rich wraps lines


def test_cli_eval_accepts_a_shipped_policy_name(tmp_path, monkeypatch):
    # The real policy this time: "base" names the checkpoint shipped inside the package, from any folder.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ev"
    argv = ["eval", "base", "--suite", "pick", "--episodes", "1", "--num-envs", "1", "--max-steps", "5"]
    assert main([*argv, "--videos", "0", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["suite"] == "pick" and data["overall"]["n"] == 1
