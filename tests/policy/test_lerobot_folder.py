"""Reading a LeRobot `pretrained_model` folder as data and fitting it to a world (no LeRobot import).
The folders are written here in LeRobot 0.4.4's layout (config.json features, processor pipelines);
folders written by LeRobot itself come with the worker of issue 26."""

from __future__ import annotations

import json

import pytest

from embodia.policy.lerobot_folder import (
    LeRobotFolderError,
    LeRobotPolicyFolder,
    is_lerobot_policy_folder,
    map_features,
)
from embodia.robots.spec import SO101


def write_folder(root, cameras=("observation.images.front", "observation.images.wrist"), state=6, action=6,
                 steps=None):  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    inputs = {"observation.state": {"type": "STATE", "shape": [state]}}
    inputs |= {c: {"type": "VISUAL", "shape": [3, 480, 640]} for c in cameras}
    config = {"type": "act", "input_features": inputs, "output_features": {"action": {"type": "ACTION", "shape": [action]}},
              "chunk_size": 100, "n_action_steps": 100, "normalization_mapping": {"STATE": "MEAN_STD"}}  # fmt: skip
    (root / "config.json").write_text(json.dumps(config))
    (root / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    pipeline = {"name": "policy_preprocessor", "steps": steps or [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "normalizer_processor", "config": {}, "state_file": "x.safetensors"}]}  # fmt: skip
    (root / "policy_preprocessor.json").write_text(json.dumps(pipeline))
    return root


def test_a_folder_is_read_and_told_apart_from_embodia_checkpoints(tmp_path, tiny_policy_dir):
    folder = LeRobotPolicyFolder.read(write_folder(tmp_path / "act"))
    assert folder.policy_type == "act" and folder.chunk_size == 100
    assert folder.cameras["observation.images.front"].shape == (3, 480, 640)
    assert folder.processor_steps == ("rename_observations_processor", "normalizer_processor")
    assert is_lerobot_policy_folder(tmp_path / "act") and not is_lerobot_policy_folder(tiny_policy_dir)


def test_matching_cameras_and_a_suggested_rename_map(tmp_path):
    same = map_features(LeRobotPolicyFolder.read(write_folder(tmp_path / "a")), SO101)
    assert same.rename == {"observation.images.front": "observation.images.front",
                           "observation.images.wrist": "observation.images.wrist"}  # fmt: skip
    assert same.image_shapes["observation.images.front"] == (480, 640)
    other = LeRobotPolicyFolder.read(
        write_folder(tmp_path / "b", ("observation.images.top", "observation.images.side"))
    )
    fitted = map_features(other, SO101)
    assert fitted.rename == {"observation.images.front": "observation.images.top",
                             "observation.images.wrist": "observation.images.side"}  # fmt: skip
    assert any("matched in order" in n for n in fitted.notes)
    chosen = {
        "observation.images.front": "observation.images.side",
        "observation.images.wrist": "observation.images.top",
    }
    assert map_features(other, SO101, rename=chosen).rename == chosen


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (
            {"cameras": ("observation.images.a", "observation.images.b", "observation.images.c")},
            "3 camera(s)",
        ),
        ({"state": 14}, "observation.state has 14 values here, 6 in the world"),
        ({"action": 7}, "the policy outputs 7 values, the world takes 6"),
    ],
)
def test_what_cannot_be_mapped_lists_both_sides(tmp_path, kwargs, says):
    folder = LeRobotPolicyFolder.read(write_folder(tmp_path / "p", **kwargs))
    with pytest.raises(LeRobotFolderError) as exc:
        map_features(folder, SO101)
    text = str(exc.value)
    assert (
        says in text and "The policy expects (act)" in text and "the world (so101) provides cameras" in text
    )


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda r: (r / "config.json").write_text("{"), "not readable JSON"),
        (lambda r: (r / "config.json").write_text('{"type": "act"}'), "not a LeRobot policy folder"),
        (lambda r: (r / "model.safetensors").unlink(), "model.safetensors is missing"),
        (
            lambda r: (r / "config.json").write_text(
                json.dumps({"type": "act", "input_features": {"x": {"type": "STATE", "shape": [-1]}}})
            ),
            "positive ints",
        ),  # fmt: skip
        (lambda r: write_folder(r, steps=[{"class": "os.system", "config": {}}]), "outside LeRobot"),
    ],
)
def test_bad_folders_are_clear_errors(tmp_path, damage, says):
    root = write_folder(tmp_path / "p")
    damage(root)
    with pytest.raises(LeRobotFolderError, match=says):
        LeRobotPolicyFolder.read(root)
