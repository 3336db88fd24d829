"""A checkpoint is a folder of plain files, written atomically, with no pickle anywhere:

    config.json            model config (VLAConfig), embodiments (dims, cameras, fps, names), metadata
    normalization.json     per-embodiment normalisation stats (the policy is wrong without them)
    model.safetensors      weights (the EMA weights when trained with EMA)
    train_state.safetensors + train_state.json   only in training checkpoints: raw weights, EMA,
                           AdamW moments and the step, for exact resume

Writing goes to a hidden sibling folder that is renamed into place, so a crash mid-write leaves either
the old checkpoint or the new one, never a half-written folder under the real name.

Three checkpoints ship inside the package and are reached by name wherever a checkpoint is accepted
(`SHIPPED_POLICIES`, `resolve_policy`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from embodia.hub import looks_like_hub_id, pull
from embodia.runs import publish_mode

FORMAT = "embodia-policy"
FORMAT_VERSION = 1
POLICY_FILES = ("config.json", "normalization.json", "model.safetensors")


class CheckpointError(ValueError):
    pass


# The checkpoints shipped inside the package, found next to this file so that a name resolves wherever
# the user runs from.
BASE_DIR = Path(__file__).parent / "base"  # the pretrained base (SO-101 tabletop)
# The same architecture trained on Meta-World MT10 (the Sawyer arm), so that
# `python benchmarks/metaworld_suite.py` reproduces its figure with no training; and its MT50 fine-tune.
METAWORLD_MT10_DIR = Path(__file__).parent / "metaworld_mt10"
METAWORLD_MT50_DIR = Path(__file__).parent / "metaworld_mt50"
SHIPPED_POLICIES: dict[str, Path] = {
    "base": BASE_DIR,
    "metaworld_mt10": METAWORLD_MT10_DIR,
    "metaworld_mt50": METAWORLD_MT50_DIR,
}


def resolve_policy(name_or_path: str | Path | None = None) -> Path:
    """The folder that a checkpoint argument means, so that every command accepts the same things.

    Precedence: an argument that names an existing folder is that folder; otherwise, if it is one of the
    shipped names (base, metaworld_mt10, metaworld_mt50), it is that shipped policy; otherwise, if it
    reads as a Hub model id (`owner/name[@revision]`), that repository, pulled into Hugging Face's cache
    (embodia.hub); otherwise a CheckpointError that lists the shipped names. So a local folder shadows a
    shipped name (with a warning) and a Hub id, as Hugging Face's `from_pretrained` prefers a local
    directory over a Hub id; None always means the shipped base.

    The folder's contents are not checked here: `check_policy_folder` or loading names any missing file."""
    if name_or_path is None:
        return _shipped("base")
    path = Path(name_or_path)
    name = str(name_or_path)
    if path.is_dir():
        if name in SHIPPED_POLICIES and path.resolve() != SHIPPED_POLICIES[name].resolve():
            warnings.warn(
                f"{name!r} is a folder here ({path.resolve()}), which shadows the shipped policy "
                f"{name!r}; to load the shipped one, run from another folder or pass "
                f"{SHIPPED_POLICIES[name]}",
                stacklevel=2,
            )
        return path
    if name in SHIPPED_POLICIES:
        return _shipped(name)
    if looks_like_hub_id(name):  # owner/name[@revision]: the Hub (embodia.hub), pulled into its cache
        return pull(name, "model")
    raise CheckpointError(
        f"{name}: neither a checkpoint folder (with {', '.join(POLICY_FILES)}), a shipped policy "
        f"name (shipped: {', '.join(SHIPPED_POLICIES)}), nor a Hub model id (owner/name[@revision])"
    )


def _shipped(name: str) -> Path:
    """The shipped folder `name`, if its weights are there (an install can lack them, e.g. a source
    checkout without Git LFS), so that the error says to reinstall rather than which file is missing."""
    folder = SHIPPED_POLICIES[name]
    if not (folder / "model.safetensors").exists():
        raise CheckpointError(
            f"the shipped {name} checkpoint is missing from {folder}; reinstall embodia or pass a path"
        )
    return folder


def write_folder(path: str | Path, files: dict[str, Any]) -> Path:
    """Atomically (re)place folder `path` with `files`: name -> dict (JSON) | tensor dict (safetensors)
    | bytes | str."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, content in files.items():
        target = tmp / name
        if name.endswith(".safetensors"):
            save_file({k: v.detach().contiguous().cpu() for k, v in content.items()}, str(target))
        elif name.endswith(".json"):
            target.write_text(json.dumps(content, indent=2) + "\n")
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(str(content))
    for f in tmp.iterdir():  # make the bytes durable before the rename publishes them
        publish_mode(f)
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    if old.exists():
        shutil.rmtree(old)
    return path


def stamp_metadata(root: str | Path, updates: dict[str, Any]) -> Path:
    """Merge `updates` into a checkpoint's `config.json` metadata (atomically; the weights are untouched).

    Metadata is provenance (which recipe and commit built it, what it scored); it never changes what the
    policy does, so a checkpoint's fingerprint leaves it out (`recipes.fingerprint`)."""
    from embodia.runs import atomic_write_text

    path = check_policy_folder(root) / "config.json"
    config = read_json(path)
    meta = config.get("metadata")
    config["metadata"] = {**(meta if isinstance(meta, dict) else {}), **updates}
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return path


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise CheckpointError(
            f"{path}: cannot read weights ({exc}); the file is corrupt or truncated"
        ) from None


def check_policy_folder(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path}: not a checkpoint folder (expected a folder with {', '.join(POLICY_FILES)})"
        )
    missing = [f for f in POLICY_FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"{path}: not a complete checkpoint; missing {', '.join(missing)}")
    return path


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- optimizer state without pickle
def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """AdamW's per-parameter moments as named tensors, the hyper-parameters as JSON."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{pid}.{name}"] = t
    return tensors, {"param_groups": sd["param_groups"]}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("opt."):
            continue
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
