"""Recipes as code: every recipe runs end to end at the tiny scale, reruns skip what is up to date, a
changed stage re-runs itself and what reads it, --from / --until, clear errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from embodia.policy.checkpoint import SHIPPED_POLICIES, stamp_metadata
from embodia.recipes import (
    RECIPES,
    Average,
    Evaluate,
    Recipe,
    RecipeError,
    Record,
    Train,
    at_scale,
    get_recipe,
    list_recipes,
    read_manifest,
    run_recipe,
)
from embodia.recipes.fingerprint import checkpoint_fingerprint, dataset_fingerprint
from embodia.recipes.runner import _add_verdict
from embodia.train.config import preset

FEWSHOT = "fewshot_place"


def statuses(result) -> dict[str, str]:
    return {s.name: s.status for s in result.stages}


def output_fingerprints(out: Path) -> dict[str, str]:
    return {
        p.parent.name: json.loads(p.read_text())["output"]["fingerprint"] for p in out.glob("*/stage.json")
    }


@pytest.fixture(scope="module")
def fewshot_tiny(tmp_path_factory) -> Path:
    """The few-shot recipe run once at the tiny scale; tests work on copies of it."""
    out = tmp_path_factory.mktemp("fewshot") / "run"
    run_recipe(FEWSHOT, scale="tiny", out=out)
    return out


@pytest.fixture
def fewshot_copy(fewshot_tiny, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(fewshot_tiny, out)  # new mtimes: fingerprints hash content, so nothing is stale
    return out


# ---------------------------------------------------------------------- every recipe, end to end
@pytest.mark.parametrize("name", [n for n in RECIPES if n != FEWSHOT])
def test_recipe_runs_tiny_then_skips_every_stage(name, tmp_path):
    recipe = get_recipe(name)
    out = tmp_path / name
    first = run_recipe(name, scale="tiny", out=out)
    assert [s.name for s in first.stages] == list(recipe.stage_names)
    assert set(statuses(first).values()) == {"ran"}
    assert first.artifact == out / recipe.artifact / recipe.stage(recipe.artifact).output
    assert (first.artifact / "model.safetensors").exists()
    for stage in first.stages:
        manifest = read_manifest(out / stage.name)
        assert manifest["complete"] and manifest["scale"] == "tiny"
        assert manifest["output"]["fingerprint"] and manifest["config"]["kind"] == stage.kind
        assert "git_sha" in manifest and manifest["seconds"] >= 0
    for name_, ev in first.evaluations.items():
        assert ev["n"] >= 1 and 0 <= ev["ci95"][0] <= ev["ci95"][1] <= 1
        if recipe.stage(name_).expect:  # the shipped figure is recorded, but a tiny run is not compared
            assert ev["expected"]["n"] == recipe.stage(name_).expect[1] and ev["within_expected"] is None
    before = output_fingerprints(out)
    second = run_recipe(name, scale="tiny", out=out)
    assert set(statuses(second).values()) == {"skipped"}
    assert output_fingerprints(out) == before and second.artifact == first.artifact


def test_fewshot_tiny_ran_every_stage(fewshot_tiny):
    assert [p.parent.name for p in sorted(fewshot_tiny.glob("*/stage.json"))] == sorted(
        get_recipe(FEWSHOT).stage_names
    )
    train = read_manifest(fewshot_tiny / "finetune_place")
    # Tiny fine-tune of a shipped policy: its architecture, 2 steps at batch 2 on the CPU.
    assert (
        train["config"]["train"]["init_from"] == "base" and train["inputs"]["base"]["path"] == "shipped:base"
    )
    assert train["train"]["steps"] == 2 and train["run"]["device"] == "cpu"
    assert train["config"]["train"]["dataset_weights"] == [0.5, 0.5]
    assert str(fewshot_tiny) not in json.dumps(train)  # no absolute paths of this machine
    # The built policy's metadata names its recipe, stage and commit, and its data by stage reference.
    meta = json.loads((fewshot_tiny / "finetune_place" / "final" / "config.json").read_text())["metadata"]
    assert meta["recipe"] == {
        "name": FEWSHOT,
        "stage": "finetune_place",
        "scale": "tiny",
        "commit": train["git_sha"],
    }
    assert meta["datasets"] == ["place20/dataset", "stack_d/dataset"]
    assert meta["inputs"]["base"] == "shipped:base" and meta["train_step"] == 2
    assert str(fewshot_tiny) not in json.dumps(meta)


def test_second_run_of_a_copy_skips_everything(fewshot_copy):
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy)
    assert set(statuses(result).values()) == {"skipped"}
    assert result.artifact == fewshot_copy / "finetune_place" / "final"


# ---------------------------------------------------------------------- changes re-run what depends on them
def test_changed_train_config_reruns_it_and_what_reads_it(fewshot_copy, monkeypatch):
    recipe = get_recipe(FEWSHOT)
    before = output_fingerprints(fewshot_copy)
    cfg = replace(recipe.stage("finetune_place").config, lr=1e-4)
    monkeypatch.setitem(RECIPES, FEWSHOT, recipe.replace_stage("finetune_place", config=cfg))
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy)
    assert statuses(result) == {
        "place20": "skipped",
        "stack_d": "skipped",
        "finetune_place": "ran",
        "eval_place": "ran",
    }
    assert result.stages[2].note == "config changed" and result.stages[3].note.startswith("inputs changed")
    after = output_fingerprints(fewshot_copy)
    assert after["place20"] == before["place20"] and after["finetune_place"] != before["finetune_place"]
    assert read_manifest(fewshot_copy / "finetune_place")["config"]["train"]["lr"] == 1e-4


def test_changed_evaluation_reruns_only_it_and_expect_reruns_nothing(fewshot_copy, monkeypatch):
    recipe = get_recipe(FEWSHOT)
    monkeypatch.setitem(RECIPES, FEWSHOT, recipe.replace_stage("eval_place", expect=(1, 30)))
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy)
    assert set(statuses(result).values()) == {"skipped"}
    assert read_manifest(fewshot_copy / "eval_place")["evaluation"]["expected"]["successes"] == 1
    monkeypatch.setitem(RECIPES, FEWSHOT, recipe.replace_stage("eval_place", seed=1))
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy)
    assert statuses(result) == {
        "place20": "skipped",
        "stack_d": "skipped",
        "finetune_place": "skipped",
        "eval_place": "ran",
    }


def test_a_changed_or_missing_output_reruns_its_stage(fewshot_copy):
    (fewshot_copy / "eval_place" / "results.json").unlink()
    shutil.rmtree(fewshot_copy / "stack_d" / "dataset" / "videos")
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy)
    assert statuses(result)["place20"] == "skipped" and statuses(result)["stack_d"] == "ran"
    assert statuses(result)["eval_place"] == "ran"
    assert (fewshot_copy / "eval_place" / "results.json").exists()


# ---------------------------------------------------------------------- --from / --until
def test_from_reruns_that_stage_and_reuses_earlier_outputs(fewshot_copy):
    before = output_fingerprints(fewshot_copy)
    result = run_recipe(FEWSHOT, scale="tiny", out=fewshot_copy, from_stage="finetune_place")
    assert statuses(result) == {
        "place20": "skipped",
        "stack_d": "skipped",
        "finetune_place": "ran",
        "eval_place": "ran",
    }
    after = output_fingerprints(fewshot_copy)
    assert after["place20"] == before["place20"] and after["stack_d"] == before["stack_d"]


def test_from_with_a_missing_earlier_stage_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match=r"'place20' is not complete.*--until place20"):
        run_recipe(FEWSHOT, scale="tiny", out=tmp_path / "empty", from_stage="finetune_place")
    assert not (tmp_path / "empty" / "finetune_place").exists()


def test_until_stops_after_the_stage(tmp_path):
    out = tmp_path / "until"
    result = run_recipe(FEWSHOT, scale="tiny", out=out, until_stage="place20")
    assert statuses(result) == {"place20": "ran"} and result.artifact is None
    assert not (out / "stack_d").exists()


def test_unknown_names_are_clear_errors(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown recipe 'nope'; valid: base, metaworld_mt10"):
        run_recipe("nope", scale="tiny", out=tmp_path)
    with pytest.raises(RecipeError, match=r"no stage 'nope'; its stages: place20, stack_d, finetune_place"):
        run_recipe(FEWSHOT, scale="tiny", out=tmp_path, from_stage="nope")
    with pytest.raises(RecipeError, match="no stage 'later'"):
        run_recipe(FEWSHOT, scale="tiny", out=tmp_path, until_stage="later")
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        run_recipe(FEWSHOT, scale="huge", out=tmp_path)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        run_recipe(FEWSHOT, scale="full", device="tpu", out=tmp_path)
    with pytest.raises(RecipeError, match="comes after"):
        run_recipe(FEWSHOT, scale="tiny", out=tmp_path, from_stage="eval_place", until_stage="place20")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- the recipes themselves
def test_each_shipped_policy_has_its_recipe():
    by_shipped = {r.shipped: r for r in list_recipes() if r.shipped}
    assert set(by_shipped) == set(SHIPPED_POLICIES) == {"base", "metaworld_mt10", "metaworld_mt50"}
    for name, recipe in by_shipped.items():
        assert recipe.name == name  # the name the shipped config.json's metadata can point at
        assert isinstance(recipe.stage(recipe.artifact), Train)
        assert any(
            isinstance(s, Evaluate) and s.policy == recipe.artifact and s.expect for s in recipe.stages
        )


def test_shipped_metadata_names_recipe_commit_and_the_figures_the_recipe_expects():
    root = Path(__file__).parents[2]
    for name, folder in SHIPPED_POLICIES.items():
        meta = json.loads((folder / "config.json").read_text())["metadata"]
        recipe = get_recipe(meta["recipe"]["name"])
        assert recipe.shipped == name and meta["recipe"]["stage"] == recipe.artifact
        assert (root / meta["recipe"]["file"]).is_file()
        for key in ("commit",):
            assert len(meta["recipe"][key]) == 40 and int(meta["recipe"][key], 16) >= 0
        assert len(meta["shipped_in"]) == 40 and int(meta["shipped_in"], 16) >= 0
        figures = {e["stage"]: (e["successes"], e["episodes"]) for e in meta["evaluation"].values()}
        expected = {s.name: s.expect for s in recipe.stages if isinstance(s, Evaluate) and s.expect}
        assert figures == expected
        assert all(isinstance(v, (str, int, list, dict)) for v in meta.values())
        assert max(len(v) for v in meta.values() if isinstance(v, str)) < 100  # references, not prose


def test_recipes_hold_the_recorded_settings():
    base = get_recipe("base")
    final = base.stage("finetune_sentence")
    assert (final.config.steps, final.config.batch_size, final.config.lr, final.config.seed) == (
        5009,
        64,
        1.5e-4,
        7,
    )
    assert (final.config.language.sentence_mix, final.config.language.sentence_noise) == (0.5, 0.8)
    assert final.weights == (0.25, 0.1, 0.35, 0.3) and final.config.minutes == 0
    assert base.stage("base_gpu").gpu and base.stage("base_gpu").config.steps == 9140
    assert base.stage("push_e").config.perturb.stroke_error == 0.02
    assert [s.expect for s in base.stages if isinstance(s, Evaluate)] == [(191, 200), (179, 200)]
    mt10 = get_recipe("metaworld_mt10").stage("train_mt10").config
    assert (mt10.steps, mt10.batch_size, mt10.model.n_action_steps, mt10.model.flow_steps) == (
        13_127,
        512,
        8,
        5,
    )
    assert get_recipe("metaworld_mt50").stage("finetune_r1").init_from == "metaworld_mt10"
    place = get_recipe(FEWSHOT)
    assert (
        place.stage("finetune_place").init_from == "base"
        and place.stage("finetune_place").config.steps == 2245
    )
    assert place.stage("place20").config.episodes == 21 and place.stage("eval_place").expect == (21, 30)
    for recipe in list_recipes():
        assert all(s.config.minutes == 0 for s in recipe.stages if isinstance(s, Train))


def test_scale_and_device():
    gpu, cpu = get_recipe("base").stage("base_gpu"), get_recipe("base").stage("finetune_sentence")
    assert at_scale(gpu, "full", "cuda", Path("c")).config.device == "cuda"
    assert at_scale(cpu, "full", "cuda", Path("c")).config.device is None  # not a GPU stage
    assert at_scale(cpu, "full", "cpu", Path("c")).config.device == "cpu"
    assert at_scale(gpu, "tiny", "cuda", Path("c")).config.device == "cpu"  # tiny: always the CPU
    assert at_scale(gpu, "full", None, Path("c")) == gpu
    tiny = at_scale(gpu, "tiny", None, Path("c")).config
    assert tiny.steps <= 4 and tiny.batch_size <= 4 and tiny.model.d_model == 32 and tiny.cache_dir == "c"
    rec = at_scale(get_recipe("metaworld_mt50").stage("mt50_s3000"), "tiny", None, Path("c")).config
    assert rec.image_size == 32 and rec.num_envs == 1 and rec.episodes == len(rec.tasks.split(","))


def test_a_rebuild_is_judged_against_the_shipped_figure():
    stage = get_recipe("base").stage("eval_seen")
    manifest = {"scale": "full", "evaluation": {"success_rate": 0.925, "successes": 185, "n": 200}}
    _add_verdict(stage, manifest)
    assert manifest["evaluation"]["within_expected"] is True  # 92.5 % is inside 191/200's [91.7, 97.6] %
    manifest["evaluation"]["success_rate"] = 0.80
    _add_verdict(stage, manifest)
    assert manifest["evaluation"]["within_expected"] is False


def test_bad_recipes_are_refused():
    rec = Record("data", get_recipe(FEWSHOT).stage("place20").config)
    with pytest.raises(RecipeError, match="neither an earlier stage nor a shipped policy"):
        Recipe("r", "", (rec, Train("t", preset("tiny"), datasets=("data",), init_from="later")), "t")
    with pytest.raises(RecipeError, match="not a Record"):
        Recipe(
            "r",
            "",
            (rec, Evaluate("e", policy="base", suite="pick"), Train("t", preset("tiny"), ("e",))),
            "t",
        )
    with pytest.raises(RecipeError, match="taken"):
        Recipe("r", "", (rec, rec), "data")
    with pytest.raises(RecipeError, match="not inside its TrainConfig"):
        Train("t", preset("tiny", datasets=["x"]), datasets=("data",))
    with pytest.raises(RecipeError, match="artifact"):
        Recipe("r", "", (rec,), "missing")


def test_dataset_fingerprint_is_content_not_place_or_time(fewshot_tiny, tmp_path):
    src = fewshot_tiny / "place20" / "dataset"
    copy = tmp_path / "elsewhere"
    shutil.copytree(src, copy)
    assert dataset_fingerprint(copy) == dataset_fingerprint(src)
    video = next((copy / "videos").rglob("*.mp4"))
    video.write_bytes(video.read_bytes() + b"\0")
    assert dataset_fingerprint(copy) != dataset_fingerprint(src)
    final = fewshot_tiny / "finetune_place" / "final"
    assert (
        checkpoint_fingerprint(final)
        == read_manifest(fewshot_tiny / "finetune_place")["output"]["fingerprint"]
    )
    # Metadata is provenance: editing it leaves the fingerprint; any other config change does not.
    policy = tmp_path / "policy"
    shutil.copytree(final, policy)
    stamp_metadata(policy, {"note": "re-described"})
    assert checkpoint_fingerprint(policy) == checkpoint_fingerprint(final)
    config = json.loads((policy / "config.json").read_text())
    config["model"]["n_action_steps"] = config["model"]["n_action_steps"] // 2
    (policy / "config.json").write_text(json.dumps(config))
    assert checkpoint_fingerprint(policy) != checkpoint_fingerprint(final)


def test_average_stage_and_stages_shared_with_another_recipe(fewshot_copy, monkeypatch):
    """A recipe of its own reuses the few-shot recipe's identical stages in the same folder, and
    averages two fine-tunes of the base (a soup)."""
    few = get_recipe(FEWSHOT)
    tune = few.stage("finetune_place")
    soup = Recipe(
        "soup",
        "two fine-tunes of the base, averaged",
        (
            few.stage("place20"),
            few.stage("stack_d"),
            tune,
            replace(tune, name="finetune_b", config=replace(tune.config, seed=1)),
            Average("soup", ("finetune_place", "finetune_b"), (0.5, 0.5)),
            replace(few.stage("eval_place"), name="eval_soup", policy="soup"),
        ),
        artifact="soup",
    )
    monkeypatch.setitem(RECIPES, "soup", soup)
    result = run_recipe("soup", scale="tiny", out=fewshot_copy)
    assert statuses(result) == {
        "place20": "skipped",
        "stack_d": "skipped",
        "finetune_place": "skipped",
        "finetune_b": "ran",
        "soup": "ran",
        "eval_soup": "ran",
    }
    assert result.artifact == fewshot_copy / "soup" / "policy"
    assert set(read_manifest(fewshot_copy / "soup")["inputs"]) == {"finetune_place", "finetune_b"}
    assert read_manifest(fewshot_copy / "eval_soup")["evaluation"]["n"] == 1
    meta = json.loads((fewshot_copy / "soup" / "policy" / "config.json").read_text())["metadata"]
    assert [e["path"] for e in meta["averaged_from"]] == ["finetune_place/final", "finetune_b/final"]
    assert meta["recipe"]["stage"] == "soup" and str(fewshot_copy) not in json.dumps(meta)
