"""A LeRobot `pretrained_model` folder, read as data (no LeRobot import): what the policy expects, and
how an embodia world's observation maps onto it.

LeRobot (0.4.x) saves a policy as `config.json` (its `type`, `input_features` and `output_features`
as `{"type": "STATE" | "VISUAL" | "ENV" | "ACTION", "shape": [...]}` with camera shapes channel-first,
`chunk_size`, `n_action_steps`, ...), `model.safetensors`, and its processors
(`policy_preprocessor.json` / `policy_postprocessor.json`, with the normalisation statistics in
safetensors beside them). Running such a policy needs LeRobot's own code (issue 26: in its own
environment); checking that it fits a world does not, and should happen before anything starts:
`map_features` matches cameras (by name, else a rename map suggested in order when the counts match),
state and action sizes, and says what differs in words that list both sides.

Processor steps may name a Python class to import (`"class": "module.Class"`): only classes under
`lerobot.` are accepted, so a downloaded folder cannot make embodia import arbitrary code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from embodia.robots.spec import ACTION, OBS_STATE, EmbodimentSpec, image_key

PROCESSOR_FILES = ("policy_preprocessor.json", "policy_postprocessor.json")
FEATURE_TYPES = ("STATE", "VISUAL", "ENV", "ACTION", "REWARD", "LANGUAGE")


class LeRobotFolderError(ValueError):
    """The folder is not a LeRobot policy embodia can read, or does not fit the world; says why."""


@dataclass(frozen=True)
class Feature:
    type: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class LeRobotPolicyFolder:
    path: Path
    policy_type: str  # "act", "diffusion", "smolvla", "pi0", ...
    inputs: dict[str, Feature]
    outputs: dict[str, Feature]
    chunk_size: int | None
    n_action_steps: int | None
    processor_steps: tuple[str, ...] = ()  # registry names or classes, in pipeline order

    @property
    def cameras(self) -> dict[str, Feature]:
        return {k: f for k, f in self.inputs.items() if f.type == "VISUAL"}

    @classmethod
    def read(cls, path: str | Path) -> LeRobotPolicyFolder:
        path = Path(path)
        config = _json(path / "config.json")
        if not isinstance(config, dict) or "type" not in config or "input_features" not in config:
            raise LeRobotFolderError(
                f"{path}: config.json has no 'type' and 'input_features': not a LeRobot policy folder"
            )
        if not (path / "model.safetensors").is_file():
            raise LeRobotFolderError(f"{path}: model.safetensors is missing")
        steps: list[str] = []
        for name in PROCESSOR_FILES:
            if (path / name).is_file():
                steps += _processor_steps(path / name)
        return cls(
            path=path,
            policy_type=str(config["type"]),
            inputs=_features(config.get("input_features"), path, "input_features"),
            outputs=_features(config.get("output_features"), path, "output_features"),
            chunk_size=_opt_int(config.get("chunk_size")),
            n_action_steps=_opt_int(config.get("n_action_steps")),
            processor_steps=tuple(steps),
        )


def is_lerobot_policy_folder(path: str | Path) -> bool:
    """True for a folder whose config.json reads as a LeRobot policy's (embodia checkpoints differ)."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "type" in config and "input_features" in config


def _json(file: Path):
    try:
        return json.loads(file.read_text())
    except FileNotFoundError:
        raise LeRobotFolderError(f"{file}: no such file") from None
    except (OSError, ValueError) as exc:
        raise LeRobotFolderError(f"{file}: not readable JSON ({exc})") from None


def _features(raw, path: Path, key: str) -> dict[str, Feature]:
    if not isinstance(raw, dict):
        raise LeRobotFolderError(
            f"{path}: config.json '{key}' must be a map of feature name to type and shape"
        )
    out = {}
    for name, f in raw.items():
        shape = f.get("shape") if isinstance(f, dict) else None
        kind = f.get("type") if isinstance(f, dict) else None
        if (
            kind not in FEATURE_TYPES
            or not isinstance(shape, list)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape)
        ):
            raise LeRobotFolderError(
                f"{path}: config.json {key}[{name!r}] must be {{'type': one of {FEATURE_TYPES}, "
                f"'shape': [positive ints]}}, got {f!r}"
            )
        out[str(name)] = Feature(kind, tuple(shape))
    return out


def _opt_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _processor_steps(file: Path) -> list[str]:
    pipeline = _json(file)
    steps = pipeline.get("steps") if isinstance(pipeline, dict) else None
    if not isinstance(steps, list):
        raise LeRobotFolderError(f"{file}: no list of 'steps'")
    names = []
    for step in steps:
        if not isinstance(step, dict):
            raise LeRobotFolderError(f"{file}: a step is {type(step).__name__}, expected a map")
        if "class" in step:
            cls = str(step["class"])
            if not cls.startswith("lerobot."):
                raise LeRobotFolderError(
                    f"{file}: step class {cls!r} is outside LeRobot; refusing to import it (only "
                    "'lerobot.' classes or registry names are accepted)"
                )
            names.append(cls)
        else:
            names.append(str(step.get("registry_name", "?")))
    return names


# ------------------------------------------------------------------------------- fitting a world
@dataclass
class FeatureMap:
    """How a world's observation becomes the policy's input."""

    rename: dict[str, str]  # world camera key -> policy camera key
    image_shapes: dict[str, tuple[int, int]]  # policy camera key -> (H, W) it was trained at
    notes: list[str] = field(default_factory=list)  # things to know that are not errors


def map_features(
    folder: LeRobotPolicyFolder, spec: EmbodimentSpec, rename: dict[str, str] | None = None
) -> FeatureMap:
    """Match `spec`'s cameras, state and action to the policy's features, or raise LeRobotFolderError
    listing what the policy expects and what the world provides."""
    world = [image_key(c.name) for c in spec.cameras]
    wanted = list(folder.cameras)
    expects = _describe(folder)
    provides = (
        f"the world ({spec.name}) provides cameras {world} (each (3, {spec.cameras[0].height}, "
        f"{spec.cameras[0].width})), {OBS_STATE} ({spec.state_dim},), {ACTION} ({spec.action_dim},)"
        if spec.cameras
        else f"the world ({spec.name}) provides no camera"
    )
    problems = []
    state = folder.inputs.get(OBS_STATE)
    if state is not None and state.shape != (spec.state_dim,):
        problems.append(f"{OBS_STATE} has {state.shape[0]} values here, {spec.state_dim} in the world")
    action = folder.outputs.get(ACTION)
    if action is None or action.shape != (spec.action_dim,):
        got = "none" if action is None else f"{action.shape[0]} values"
        problems.append(f"{ACTION}: the policy outputs {got}, the world takes {spec.action_dim}")
    mapping = _camera_map(world, wanted, rename, problems)
    if problems:
        raise LeRobotFolderError("; ".join(problems) + f".\nThe policy expects {expects};\n{provides}.")
    notes = []
    if rename is None and any(k != v for k, v in mapping.items()):
        pairs = ", ".join(f"{k} -> {v}" for k, v in mapping.items())
        notes.append(f"cameras matched in order (pass a rename map to choose): {pairs}")
    shapes = {k: folder.cameras[k].shape[1:3] for k in wanted}
    return FeatureMap(mapping, shapes, notes)


def _camera_map(world: list[str], wanted: list[str], rename, problems: list[str]) -> dict[str, str]:
    if rename is not None:
        bad = {k: v for k, v in rename.items() if k not in world or v not in wanted}
        missing = [w for w in wanted if w not in rename.values()]
        if bad or missing:
            problems.append(f"rename map {rename} does not take the world's cameras onto the policy's"
                            + (f" (unknown: {bad})" if bad else "") + (f" (unfed: {missing})" if missing else ""))  # fmt: skip
        return dict(rename)
    if set(wanted) <= set(world):
        return {w: w for w in wanted}
    if len(world) == len(wanted):
        return dict(zip(world, wanted, strict=True))
    problems.append(f"the policy reads {len(wanted)} camera(s) {wanted}, the world has {len(world)} {world}")
    return {}


def _describe(folder: LeRobotPolicyFolder) -> str:
    parts = [f"{k} {f.type} {f.shape}" for k, f in folder.inputs.items()]
    parts += [f"{k} {f.type} {f.shape} (output)" for k, f in folder.outputs.items()]
    return f"({folder.policy_type}) " + ", ".join(parts)
