"""embodia.net: which path arguments read as Hugging Face Hub ids (issue 25, item 7)."""

from __future__ import annotations

import pytest

from embodia.net import hub_id_hint, looks_like_hub_id


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "arg", ["lerobot/pusht", "lerobot/svla_so101_pickplace", "Org-1/my.data_set", "a/b", "user/x" + "y" * 90]
)
def test_hub_ids(arg, elsewhere):
    assert looks_like_hub_id(arg)


@pytest.mark.parametrize(
    "arg",
    [
        "pusht",  # no owner
        "./lerobot/pusht",  # explicitly a path
        "/lerobot/pusht",
        "~/pusht",
        "lerobot/pusht/",
        "data/lerobot/pusht",  # two slashes
        "lerobot/-pusht",  # the Hub's rules: no leading or trailing - or .
        "lerobot/pusht.",
        "lero--bot/pusht",
        "lerobot/pu..sht",
        "le robot/pusht",
        "user/x" + "y" * 91,  # 97 characters
        "",
    ],
)
def test_paths_that_are_not_hub_ids(arg, elsewhere):
    assert not looks_like_hub_id(arg)
    assert hub_id_hint(arg, "dataset") is None


def test_an_existing_folder_is_never_a_hub_id(elsewhere):
    (elsewhere / "lerobot" / "pusht").mkdir(parents=True)
    assert not looks_like_hub_id("lerobot/pusht")
    assert looks_like_hub_id("lerobot/aloha")


def test_the_hint_says_how_to_download(elsewhere):
    dataset = hub_id_hint("lerobot/pusht", "dataset")
    assert dataset is not None
    assert "'lerobot/pusht' is not a local folder" in dataset
    assert "Hugging Face Hub dataset id" in dataset and "does not download from the Hub" in dataset
    assert "hf download lerobot/pusht --repo-type dataset --local-dir DIR" in dataset
    model = hub_id_hint("lerobot/smolvla_base", "model")
    assert model is not None and "Hub model id" in model
    assert "hf download lerobot/smolvla_base --local-dir DIR" in model  # models are the default type
