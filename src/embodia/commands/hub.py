"""`embodia dataset push` / `embodia policy push`: a dataset or an embodia checkpoint onto the Hugging Face
Hub, with its card (embodia.hub; pulling needs no command: pass the id wherever a folder goes)."""

from __future__ import annotations

from dataclasses import dataclass

from embodia.commands.common import console
from embodia.configs import nested, opt


@dataclass(frozen=True)
class HubRepo:
    """The Hub repository a push creates or updates: shared by `dataset push` and `policy push`."""

    private: bool = opt(False, "create the repository private")
    branch: str | None = opt(None, "push to this branch (created if needed) instead of main")
    license: str = opt("apache-2.0", "the license named in the card (a Hub license identifier)")


@dataclass(frozen=True)
class DatasetPushOptions:
    root: str = opt(help="the dataset folder (LeRobotDataset v3.0)", positional=True)
    repo_id: str = opt(help="the Hub repository: owner/name", positional=True)
    repo: HubRepo = nested(HubRepo, "the repository")
    skip_verify: bool = opt(False, "push without first reading every file (`dataset info --verify`)")


def cmd_dataset_push(o: DatasetPushOptions) -> int:
    """Push a dataset to the Hugging Face Hub with a dataset card and the v3.0 tag LeRobot loads it at."""
    from pathlib import Path

    from embodia.data.card import dataset_card
    from embodia.data.format import DatasetError
    from embodia.data.verify import verify
    from embodia.hub import DATASET_TAG, Push, push_folder

    root = Path(o.root)
    if not root.is_dir():
        raise DatasetError(f"{o.root}: no dataset folder here (push takes a local folder)")
    card = dataset_card(root, o.repo_id, o.repo.license)  # reads and checks the metadata first
    if not o.skip_verify and (problems := verify(root)):
        for p in problems[:10]:
            console.print(f"[red]problem:[/] {p}")
        raise DatasetError(f"{root}: {len(problems)} corrupt or inconsistent files; nothing was pushed")
    url = push_folder(Push(root, o.repo_id, "dataset", card, o.repo.private, o.repo.branch, tag=DATASET_TAG))
    console.print(
        f"pushed {root} to {url} (tag {DATASET_TAG}); load it with `embodia dataset info {o.repo_id}`"
    )
    return 0


@dataclass(frozen=True)
class PolicyPushOptions:
    checkpoint: str = opt(help="an embodia checkpoint folder, or a shipped name (base ...)", positional=True)
    repo_id: str = opt(help="the Hub repository: owner/name", positional=True)
    repo: HubRepo = nested(HubRepo, "the repository")


# What a policy repository holds: the weights and what reads them, not the training state.
POLICY_UPLOAD = ("config.json", "model.safetensors", "normalization.json")


def cmd_policy_push(o: PolicyPushOptions) -> int:
    """Push an embodia checkpoint to the Hugging Face Hub with a model card (recipe, evaluations)."""
    from pathlib import Path

    from embodia.hub import Push, push_folder
    from embodia.policy.card import model_card
    from embodia.policy.checkpoint import resolve_policy
    from embodia.policy.policy import Policy

    root = resolve_policy(o.checkpoint) if not Path(o.checkpoint).exists() else Path(o.checkpoint)
    Policy.from_pretrained(root)  # loads: a checkpoint that does not load is not pushed
    card = model_card(root, o.repo_id, o.repo.license)
    url = push_folder(Push(root, o.repo_id, "model", card, o.repo.private, o.repo.branch,
                           allow_patterns=POLICY_UPLOAD))  # fmt: skip
    console.print(f"pushed {root} to {url}; run it with `embodia eval {o.repo_id}`")
    return 0
