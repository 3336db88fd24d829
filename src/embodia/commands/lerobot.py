"""`embodia lerobot setup` / `embodia lerobot inspect`: LeRobot's own environment, and what a LeRobot
policy folder expects of embodia's worlds."""

from __future__ import annotations

from dataclasses import dataclass

from embodia.commands.common import console
from embodia.configs import opt


@dataclass(frozen=True)
class SetupOptions:
    env: str | None = opt(
        None, "where to build it (default: $EMBODIA_LEROBOT_ENV, else ~/.cache/embodia/lerobot-0.4.4)"
    )
    force: bool = opt(False, "rebuild it even if it already works")


def cmd_lerobot_setup(o: SetupOptions) -> int:
    """Build the environment LeRobot policies run in (lerobot 0.4.4 and its torch; about 8 GB, minutes):
    embodia starts a worker there whenever a checkpoint is a LeRobot pretrained_model folder."""
    from pathlib import Path

    from embodia.policy.lerobot_env import REQUIREMENTS, build_env, describe_env
    from embodia.policy.lerobot_policy import env_dir

    target = Path(o.env) if o.env else env_dir()
    if not o.force and (found := describe_env(target)) is not None:
        console.print(f"LeRobot environment already works at [bold]{target}[/]: {found}")
        return 0
    console.print(
        f"building the LeRobot environment at [bold]{target}[/]: pip install {' '.join(REQUIREMENTS)}"
    )
    seconds, size = build_env(target)
    console.print(
        f"done in {seconds / 60:.1f} min, {size / 1e9:.1f} GB: {describe_env(target)}"
        + ("" if o.env is None else f"\nuse it with: export EMBODIA_LEROBOT_ENV={target}")
    )
    return 0


@dataclass(frozen=True)
class InspectOptions:
    folder: str = opt(
        help="a LeRobot pretrained_model folder (or the checkpoint folder above it), or its Hub id",
        positional=True,
    )


def cmd_lerobot_inspect(o: InspectOptions) -> int:
    """What a LeRobot policy folder expects and how embodia's world feeds it (cameras, state, action,
    units), without starting it."""
    from embodia.hub import resolve_folder
    from embodia.policy.lerobot_folder import LeRobotFolderError, LeRobotPolicyFolder
    from embodia.policy.lerobot_policy import detect_units, fit_world
    from embodia.policy.loading import lerobot_folder_of

    root = lerobot_folder_of(resolve_folder(o.folder, "model") or o.folder)  # a Hub id is pulled first
    if root is None:
        raise LeRobotFolderError(
            f"{o.folder}: no LeRobot policy here (config.json with 'type' and 'input_features')"
        )
    folder = LeRobotPolicyFolder.read(root)
    embodiment, fmap = fit_world(folder)
    units, why = detect_units(root, embodiment)
    console.print(
        f"[bold]{folder.policy_type}[/] policy at {root}: chunk {folder.chunk_size}, executes {folder.n_action_steps}"
    )
    for key, f in {**folder.inputs, **folder.outputs}.items():
        console.print(f"  {key}: {f.type} {list(f.shape)}")
    console.print(f"world: {embodiment}; cameras " + ", ".join(f"{w} -> {p}" for w, p in fmap.rename.items()))
    console.print(f"units: {units} ({why})")
    for note in fmap.notes:
        console.print(f"note: {note}")
    return 0
