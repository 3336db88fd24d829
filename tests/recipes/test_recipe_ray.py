"""`embodia recipe run NAME --ray`: a recipe's Record and Evaluate stages play their episodes on Ray actors
of a real two-node cluster on this machine (conftest's `ray_cluster`), and build what a local run
builds: the same stage configs (where a stage ran is not what it built), the same recorded frames, so a
folder built on Ray is current for a later local run and nothing runs again."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from embodia.cli import main
from embodia.data.record import RecordConfig
from embodia.recipes.runner import read_manifest, run_recipe
from embodia.recipes.stages import Evaluate, Recipe, Record

pytest.importorskip("ray")

RECIPE = Recipe(
    "on_ray",
    "two tiny stages: record touch and push, evaluate the shipped base on touch",
    (
        Record("data", RecordConfig("touch,push", episodes=4, num_envs=2, image_size=32, keep_failures=True)),
        Evaluate("ev", "base", "touch", episodes=3, num_envs=2, max_steps=12, videos_per_task=1),
    ),
    artifact="data",
)


def _frames(root):
    return pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pydict()


def test_record_and_evaluate_stages_run_on_ray_and_build_what_a_local_run_builds(ray_cluster, tmp_path):
    remote = run_recipe(RECIPE, out=tmp_path / "ray", ray="auto")
    local = run_recipe(RECIPE, out=tmp_path / "local")
    assert [s.status for s in remote.stages] == [s.status for s in local.stages] == ["ran", "ran"]
    for name in ("data", "ev"):
        on_ray, here = read_manifest(tmp_path / "ray" / name), read_manifest(tmp_path / "local" / name)
        assert on_ray["config"] == here["config"]
        assert on_ray["run"] == {"ray": "auto"} and "run" not in here
    assert _frames(tmp_path / "ray" / "data" / "dataset") == _frames(tmp_path / "local" / "data" / "dataset")
    evaluation = read_manifest(tmp_path / "ray" / "ev")["evaluation"]
    assert evaluation["n"] == 3 and set(evaluation["tasks"]) == set(
        read_manifest(tmp_path / "local" / "ev")["evaluation"]["tasks"]
    )
    assert len(list((tmp_path / "ray" / "ev" / "videos").glob("*.mp4"))) == 1  # came back through Ray
    again = run_recipe(RECIPE, out=tmp_path / "ray")  # locally, on the folder built on Ray
    assert [s.status for s in again.stages] == ["skipped", "skipped"]


def test_without_ray_the_flag_is_a_clear_error_before_any_stage(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["recipe", "run", "fewshot_place", "--scale", "tiny", "--ray"]) == 2
    assert "optional extra 'ray'" in " ".join(capsys.readouterr().out.split())
