"""Typed configs are the one source of truth: the CLI is generated from them, every option explains
itself, and a run's saved config re-runs it exactly."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodia.cli import build_parser, main, parse, reference_markdown
from embodia.configs import from_dict, to_dict
from embodia.train.config import PRESETS, LanguageAugConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "so101_tabletop_tiny"


def _leaf_parsers(parser: argparse.ArgumentParser, path=("embodia",)):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(path), parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_option_of_every_command_has_help_and_says_its_default():
    leaves = dict(_leaf_parsers(build_parser()))
    assert {"embodia train", "embodia eval", "embodia recipe run", "embodia dataset info"} <= set(leaves)
    for name, parser in leaves.items():
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
            says_default = "default" in action.help or "required" in action.help
            if action.option_strings and action.nargs != 0:  # flags (nargs 0) are off unless given
                assert says_default, f"{name} {action.option_strings}: help does not show the default"


def test_the_cli_keeps_the_documented_spellings():
    cmd, o = parse(["train", "a", "b", "--preset", "tiny", "--weights", "1,2", "--minutes", "3", "--no-augment",
                    "--paraphrase", "0.5", "--paraphrase-carriers", "--instructions", "t.safetensors",
                    "--head", "l1", "--init-from", "base"])  # fmt: skip
    cfg = o.train
    assert cmd.name == "train" and cfg.datasets == ["a", "b"] and cfg.dataset_weights == [1.0, 2.0]
    assert cfg.minutes == 3 and cfg.augment is False and cfg.instruction_table == "t.safetensors"
    assert cfg.language == LanguageAugConfig(paraphrase=0.5, paraphrase_carriers=True)
    assert cfg.model.head == "l1" and cfg.init_from == "base"
    # A flag changes only its field: the rest is the preset's.
    tiny = PRESETS["tiny"].config
    assert (cfg.steps, cfg.batch_size, cfg.model.d_model) == (tiny.steps, tiny.batch_size, tiny.model.d_model)
    _, o = parse(
        ["record", "pick,stack", "--episodes", "3", "--approach-error", "0.02", "--carry-error", "0.01"]
    )
    assert o.record.tasks == "pick,stack" and o.record.episodes == 3
    assert (o.record.perturb.approach_error, o.record.perturb.carry_error) == (0.02, 0.01)
    _, o = parse(["eval", "base", "--suite", "pick", "--videos", "0", "--out", "x"])
    assert (o.checkpoint, o.eval.suite, o.eval.videos_per_task, o.eval.out_dir) == ("base", "pick", 0, "x")


def test_each_training_setting_is_declared_once():
    """No training setting is spelled out again outside TrainConfig: the CLI code holds no option of its
    own for one (the generated parser's train options all come from the dataclass's fields)."""
    import embodia.cli
    import embodia.commands.train

    names = {f.name for f in dataclasses.fields(TrainConfig)} | {
        f.name for f in dataclasses.fields(LanguageAugConfig)
    }
    for module in (embodia.cli, embodia.commands.train):
        text = Path(module.__file__).read_text()
        assert "add_argument(" not in text, module.__name__
        for name in names:  # no hand-written option for a training setting
            assert f'"--{name.replace("_", "-")}"' not in text, (module.__name__, name)


def test_presets_state_their_true_size():
    from embodia.policy.model import VLA

    for name, p in PRESETS.items():
        if "--init-from" in p.about:  # a fine-tune takes its checkpoint's architecture
            continue
        millions = sum(x.numel() for x in VLA(p.config.model).parameters()) / 1e6
        assert f"{millions:.2g} M parameters" in p.about or f"{millions:.1f} M parameters" in p.about, (
            name, millions, p.about)  # fmt: skip


def test_a_saved_config_reads_back_equal_and_refuses_unknown_keys():
    cfg = dataclasses.replace(
        PRESETS["base"].config, datasets=["d"], language=LanguageAugConfig(paraphrase=0.5)
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg
    with pytest.raises(ValueError, match="unknown keys"):
        TrainConfig.from_dict({**to_dict(cfg), "stpes": 3})
    with pytest.raises(ValueError, match="unknown keys"):
        from_dict(LanguageAugConfig, {"paraphrse": 0.5})
    older = {k: v for k, v in to_dict(cfg).items() if k not in ("language", "minutes")}
    older |= {"paraphrase": 0.5, "time_budget_s": 120.0}  # a run folder from before the language group
    assert (
        TrainConfig.from_dict(older).language.paraphrase == 0.5 and TrainConfig.from_dict(older).minutes == 2
    )


def test_a_run_re_run_from_its_train_config_gives_bit_identical_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = ["train", str(FIXTURE), "--preset", "tiny", "--steps", "4", "--paraphrase", "0.5", "--seed", "3",
             "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "a"), "--no-preflight"]  # fmt: skip
    assert main(first) == 0
    again = ["train", "--config", str(tmp_path / "a" / "train_config.json"), "--out", str(tmp_path / "b"),
             "--no-preflight"]  # fmt: skip
    assert main(again) == 0
    a, b = (load_file(str(tmp_path / run / "final" / "model.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert saved["seed"] == 3 and saved["language"]["paraphrase"] == 0.5 and saved["steps"] == 4
    # Flags override the saved config; a preset beside it is refused (the file already holds one).
    _, o = parse(["train", "--config", str(tmp_path / "a" / "train_config.json"), "--seed", "4"])
    assert o.train.seed == 4 and o.train.steps == 4 and o.train.out is None
    assert main(["train", "--config", str(tmp_path / "a" / "train_config.json"), "--preset", "base"]) == 2
    assert main(["train", "--config", str(tmp_path / "missing.json")]) == 2


def test_the_cli_reference_is_generated_from_the_configs():
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == reference_markdown(), "regenerate: python -m embodia.cli --reference > docs/cli.md"
    assert "`embodia train`" in committed and "--paraphrase" in committed
