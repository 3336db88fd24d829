"""The shipped policies by name ('base', 'metaworld_mt10', 'metaworld_mt50') wherever a checkpoint is
accepted, from any working directory; a local folder of the same name wins, with a warning."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embodia.policy.average import average_checkpoints
from embodia.policy.checkpoint import (
    BASE_DIR,
    METAWORLD_MT10_DIR,
    METAWORLD_MT50_DIR,
    SHIPPED_POLICIES,
    CheckpointError,
    resolve_policy,
)
from embodia.policy.policy import Policy

FIXTURE = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """An empty working directory, far from the package: names must not depend on where one runs."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def test_each_name_resolves_to_its_shipped_folder(elsewhere):
    assert SHIPPED_POLICIES == {
        "base": BASE_DIR,
        "metaworld_mt10": METAWORLD_MT10_DIR,
        "metaworld_mt50": METAWORLD_MT50_DIR,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing shadows them here
        for name, folder in SHIPPED_POLICIES.items():
            assert resolve_policy(name) == folder
    assert resolve_policy(None) == BASE_DIR


def test_the_constants_are_still_importable_from_policy_policy():
    from embodia.policy import policy

    assert (policy.BASE_DIR, policy.METAWORLD_MT10_DIR, policy.METAWORLD_MT50_DIR) == (
        BASE_DIR,
        METAWORLD_MT10_DIR,
        METAWORLD_MT50_DIR,
    )


def test_an_unknown_name_is_a_clear_error(elsewhere):
    with pytest.raises(
        CheckpointError, match="neither a checkpoint folder .* a shipped policy name .* nor a Hub model id"
    ) as err:
        resolve_policy("metaworld_mt100")
    assert "base, metaworld_mt10, metaworld_mt50" in str(err.value)
    with pytest.raises(CheckpointError, match="metaworld_mt100"):
        Policy.from_pretrained("metaworld_mt100")


def test_a_local_folder_shadows_a_shipped_name_with_a_warning(elsewhere):
    local = elsewhere / "base"
    shutil.copytree(METAWORLD_MT10_DIR, local)  # a different policy under the shipped name
    with pytest.warns(UserWarning, match="shadows the shipped policy 'base'"):
        assert resolve_policy("base") == local.relative_to(elsewhere)
    with pytest.warns(UserWarning, match="shadows"):
        policy = Policy.from_pretrained("base")
    assert policy.embodiment == "sawyer"  # the local copy, not the shipped SO-101 base
    # Policy.from_pretrained() with no argument always means the shipped base.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Policy.from_pretrained().embodiment == "so101"
        assert resolve_policy(str(BASE_DIR)) == BASE_DIR  # the explicit path reaches it too


def test_from_pretrained_loads_a_shipped_name(elsewhere):
    policy = Policy.from_pretrained("metaworld_mt10")
    assert policy.path == METAWORLD_MT10_DIR and policy.embodiment == "sawyer"


def test_a_missing_shipped_checkpoint_says_to_reinstall(elsewhere, monkeypatch, tmp_path):
    monkeypatch.setitem(SHIPPED_POLICIES, "metaworld_mt50", tmp_path / "absent")
    with pytest.raises(CheckpointError, match="shipped metaworld_mt50 checkpoint is missing.*reinstall"):
        Policy.from_pretrained("metaworld_mt50")


def test_average_accepts_names(elsewhere, tmp_path):
    out = average_checkpoints(["base", "base"], tmp_path / "avg")
    base, avg = load_file(str(BASE_DIR / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert base.keys() == avg.keys() and all(torch.equal(base[k], avg[k]) for k in base)


def test_cli_average_accepts_names(elsewhere, tmp_path):
    from embodia.cli import main

    assert main(["average", "base", "base", "--out", str(tmp_path / "avg")]) == 0
    assert Policy.from_pretrained(tmp_path / "avg").embodiment == "so101"


def test_training_can_start_from_a_shipped_name(elsewhere, tmp_path):
    from embodia.train.config import preset
    from embodia.train.loop import train

    cache = str(tmp_path / "cache")
    cfg = preset("tiny", datasets=[str(FIXTURE)], cache_dir=cache, steps=2, batch_size=2, init_from="base")
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    base = Policy.from_pretrained("base")
    assert policy.cfg.to_dict() == base.cfg.to_dict()  # the architecture came from the shipped base
    assert policy.num_parameters() == base.num_parameters()
