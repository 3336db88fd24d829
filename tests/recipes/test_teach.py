"""`embodia teach`: a folder of demonstrations -> fine-tune co-trained -> held-out evaluation -> report,
run end to end at the tiny scale; a rerun skips it all, new demonstrations re-run what reads them; bad
input fails before any run folder exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embodia.cli import main, parse
from embodia.data.record import RecordConfig, record
from embodia.recipes import read_manifest
from embodia.recipes.teach import (
    TEACH_COTRAIN_SHARE,
    TEACH_DISTILL,
    TEACH_LR,
    TeachConfig,
    resolve_family,
    teach,
    teach_recipe,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "tasks"
BESIDE = str(EXAMPLES / "beside.py")


@pytest.fixture
def beside_demos(tmp_path, task_registry) -> Path:
    """Two scripted demonstrations of the example `beside` family (32 px, to stay fast)."""
    cfg = RecordConfig("beside", episodes=2, num_envs=1, image_size=32, seed=5000, task_files=[BESIDE])
    from embodia.tasks import load_task_file

    load_task_file(BESIDE)
    root = tmp_path / "demos"
    assert record(cfg, root).saved == 2
    return root


def test_teach_runs_the_whole_loop_and_a_rerun_skips_it(beside_demos, tmp_path):
    out = tmp_path / "run"
    cfg = TeachConfig(demos=str(beside_demos), task_files=[BESIDE], out=str(out), episodes=1, own_episodes=1)
    report = teach(cfg, scale="tiny")
    assert report["family"] == "beside"  # read from the demonstrations' instructions
    assert report["demos"]["saved"] == 2 and report["demos"]["frames"] > 0
    after, before = report["heldout_after"], report["heldout_before"]
    assert after["split"] == before["split"] == "heldout" and after["suite"] == "beside"
    assert after["n"] == before["n"] == 1 and 0 <= after["ci95"][0] <= after["ci95"][1] <= 1
    assert report["own_after"]["n"] == report["own_before"]["n"] == 4  # one per own family
    assert report["finetune"]["steps"] == 2 and report["finetune"]["policy"] == "finetune/final"
    assert json.loads((out / "report.json").read_text()) == report
    assert "held-out phrasings" in (out / "report.md").read_text()
    # The fine-tune read the demos and both co-training recordings, which share TEACH_COTRAIN_SHARE.
    train = read_manifest(out / "finetune")
    assert train["config"]["train"]["datasets"] == ["demos", "co_stack", "co_push"]
    share = TEACH_COTRAIN_SHARE
    assert train["config"]["train"]["dataset_weights"] == pytest.approx([1 - share, share / 2, share / 2])
    assert train["inputs"]["demos"]["path"] == "demos:demos"
    assert train["config"]["train"]["task_files"] == [BESIDE]
    meta = json.loads((out / "finetune" / "final" / "config.json").read_text())["metadata"]
    assert meta["recipe"]["name"] == "teach" and meta["datasets"][0] == "demos:demos"
    # Everything up to date: nothing runs again, the report is the same.
    finished = {name: read_manifest(out / name)["finished_utc"] for name in report["stages"]}
    again = teach(cfg, scale="tiny")
    assert again["heldout_after"] == after
    assert {name: read_manifest(out / name)["finished_utc"] for name in report["stages"]} == finished


def test_new_demonstrations_rerun_only_what_reads_them(beside_demos, tmp_path):
    out = tmp_path / "run"
    cfg = TeachConfig(demos=str(beside_demos), task_files=[BESIDE], out=str(out), episodes=1,
                      cotrain="none", compare_before=False)  # fmt: skip
    teach(cfg, scale="tiny")
    first = {name: read_manifest(out / name)["finished_utc"] for name in ("demos", "finetune")}
    assert read_manifest(out / "finetune")["config"]["train"]["dataset_weights"] == [1.0]
    shutil.rmtree(beside_demos)
    record(RecordConfig("beside", episodes=3, num_envs=1, image_size=32, seed=5000, task_files=[BESIDE]),
           beside_demos)  # fmt: skip
    report = teach(cfg, scale="tiny")
    assert report["demos"]["saved"] == 3
    train = read_manifest(out / "finetune")
    assert train["finished_utc"] != first["finetune"]  # re-trained on the new demonstrations


def test_bad_input_fails_before_any_run_folder(beside_demos, tmp_path, task_registry):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="not a dataset"):
        teach(TeachConfig(demos=str(tmp_path), out=str(out)))
    with pytest.raises(ValueError, match="not a dataset"):
        teach(TeachConfig(demos=str(beside_demos), cotrain=str(tmp_path / "nope"), out=str(out)))
    with pytest.raises(ValueError, match="unknown family 'nope'"):
        teach(TeachConfig(demos=str(beside_demos), family="nope", out=str(out)))
    with pytest.raises(ValueError, match="cotrain_share"):
        TeachConfig(demos=str(beside_demos), cotrain_share=1.0)
    assert not out.exists()


def test_demos_of_several_families_need_the_family_named(tmp_path, task_registry):
    root = tmp_path / "mixed"
    record(RecordConfig("pick,push", episodes=2, num_envs=1, image_size=32), root)
    with pytest.raises(ValueError, match=r"belong to \['pick', 'push'\].*--family"):
        resolve_family(TeachConfig(demos=str(root)))
    assert resolve_family(TeachConfig(demos=str(root), family="push")) == "push"


def test_the_command_line_is_the_config(beside_demos):
    cmd, cfg = parse(["teach", str(beside_demos), "--minutes", "2", "--lr", "2e-4", "--cotrain", "none",
                      "--tasks", BESIDE])  # fmt: skip
    assert cmd.name == "teach" and isinstance(cfg, TeachConfig)
    assert cfg.train.minutes == 2 and cfg.train.lr == 2e-4 and cfg.cotrain == "none"
    assert cfg.train.language.sentence_mix == 0.5  # the loop's default, kept where no flag changes it
    assert cfg.train.batch_size == 32  # the finetune preset's
    stages = teach_recipe(cfg, "beside").stage_names
    assert stages == ("demos", "finetune", "eval_before", "eval_heldout")
    assert main(["teach", str(beside_demos), "--cotrain-share", "2"]) == 2  # a clear error, no traceback
    _, fixed = parse(["teach", str(beside_demos), "--steps", "1983"])  # --steps alone: no time budget
    assert fixed.train.lr == TEACH_LR and fixed.cotrain_share == TEACH_COTRAIN_SHARE  # the loop's defaults
    assert fixed.train.steps == 1983 and fixed.train.minutes == 0
    # --freeze-encoders: the fine-tune's init_from comes from the loop's stage, not from the flags
    _, frozen = parse(["teach", str(beside_demos), "--freeze-encoders", "--cotrain", "none"])
    finetune = teach_recipe(frozen, "beside").stage("finetune")
    assert finetune.config.freeze_encoders and finetune.init_from == "base"
    # --distill: the co-training datasets' targets, never the demonstrations'
    _, kept = parse(["teach", str(beside_demos), "--distill", "0.8", "--cotrain", "a,b"])
    assert teach_recipe(kept, "beside").stage("finetune").distill == (0.0, 0.8, 0.8)
    assert teach_recipe(fixed, "beside").stage("finetune").distill == (
        None if TEACH_DISTILL == 0 else (0.0, TEACH_DISTILL, TEACH_DISTILL)
    )
    with pytest.raises(SystemExit) as exit_:  # argparse's clear error
        parse(["teach", str(beside_demos), "--distill", "2"])
    assert exit_.value.code == 2
