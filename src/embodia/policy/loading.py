"""One loader for every command that takes a checkpoint: an embodia checkpoint folder, a shipped name,
a LeRobot `pretrained_model` folder (run through `LeRobotPolicy`, in LeRobot's own environment), or a
Hub model id of either (`owner/name[@revision]`, pulled into Hugging Face's cache: embodia.hub)."""

from __future__ import annotations

from pathlib import Path

from embodia.hub import looks_like_hub_id, pull
from embodia.policy.lerobot_folder import is_lerobot_policy_folder


def lerobot_folder_of(path: str | Path | None) -> Path | None:
    """The LeRobot policy folder `path` means: the folder itself, or the `pretrained_model` inside a
    LeRobot training checkpoint (`outputs/train/.../checkpoints/005000`); else None."""
    if path is None or not Path(path).is_dir():
        return None
    for folder in (Path(path), Path(path) / "pretrained_model"):
        if is_lerobot_policy_folder(folder):
            return folder
    return None


def load_policy(path: str | Path | None = None, device: str = "cpu"):
    """A ChunkPolicy for `path` (None: the shipped base)."""
    if path is not None and not Path(path).exists() and looks_like_hub_id(path):
        path = pull(path, "model")  # before anything else: a failed pull leaves no run folder behind
    folder = lerobot_folder_of(path)
    if folder is not None:
        from embodia.policy.lerobot_policy import LeRobotPolicy

        return LeRobotPolicy(folder, device=device)
    from embodia.policy.policy import Policy

    return Policy.from_pretrained(path, device=device)


def is_lerobot(policy) -> bool:
    return getattr(policy, "metadata", {}).get("format") == "lerobot"
