"""A LeRobot policy as an embodia `ChunkPolicy`: `LeRobotPolicy("path/to/pretrained_model")`.

The policy runs in LeRobot's own environment, in a worker process this object starts and stops
(`policy/lerobot_worker.py`; why: docs/architecture.md, "LeRobot policies"). Here, before anything
starts, the folder is read and fitted to a world (`lerobot_folder.map_features`: cameras by name or in
order, state and action sizes, errors listing both sides) and the units are settled: the policy's own
normalisation statistics say whether it was trained on radians (embodia's datasets) or on LeRobot's
SO-101 degrees (gripper 0..100), and states and actions are converted on the way in and out.

Two modes, chosen from the policy's configuration:

* chunk (ACT, SmolVLA, pi0 ...): `predict_action_chunk` through the policy's processors, one chunk per
  request; embodia's `ChunkExecutor` executes `n_action_steps` of it as LeRobot's queue would, and
  batches the envs of an evaluation into one call.
* step (Diffusion's observation history, ACT's temporal ensemble): LeRobot's own `select_action` per
  tick, each episode in its own session (a copy of the policy with its own queues): `chunk_size` 1.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodia.policy import lerobot_worker as wire
from embodia.policy.lerobot_folder import FeatureMap, LeRobotFolderError, LeRobotPolicyFolder, map_features
from embodia.robots.so101 import from_lerobot_units, to_lerobot_units
from embodia.robots.spec import ACTION, EMBODIMENTS, OBS_STATE, TASK

ENV_VAR = "EMBODIA_LEROBOT_ENV"
LEROBOT_VERSION = "0.4.4"
SETUP_COMMAND = "embodia lerobot setup"
READY_TIMEOUT_S = 600.0
RADIANS, DEGREES = "radians", "degrees"


class LeRobotEnvError(RuntimeError):
    """No LeRobot environment to run the policy in; says how to make one."""


def default_env_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "embodia" / f"lerobot-{LEROBOT_VERSION}"


def env_dir() -> Path:
    """The LeRobot environment: $EMBODIA_LEROBOT_ENV, else embodia's cache folder."""
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else default_env_dir()


def env_python(folder: Path | None = None) -> Path:
    root = folder or env_dir()
    python = root / "bin" / "python"
    if not python.exists():
        raise LeRobotEnvError(
            f"LeRobot policies run in their own environment, and there is none at {root}: run "
            f"`{SETUP_COMMAND}` (about 8 GB, a few minutes), or point ${ENV_VAR} at a virtual "
            f"environment with lerobot=={LEROBOT_VERSION}"
        )
    return python


# ------------------------------------------------------------------------------------ units
def _normalizer_stats(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    for file in sorted(folder.glob("policy_preprocessor_step_*normalizer*.safetensors")):
        return load_file(str(file))
    return {}


def detect_units(folder: Path, embodiment: str) -> tuple[str, str]:
    """(units, why) of the policy's state and actions for an SO-101: radians or LeRobot's degrees.
    Read from its normalisation statistics: joint values beyond 2 pi cannot be radians."""
    if not embodiment.startswith("so101"):
        return RADIANS, "not an SO-101: the world's units are passed through"
    stats = _normalizer_stats(folder)
    values = [np.abs(v) for k, v in stats.items() if k.startswith((OBS_STATE, ACTION)) and k.rsplit(".", 1)[-1] in ("min", "max", "mean", "q01", "q99")]  # fmt: skip
    if not values:
        return RADIANS, "no normalisation statistics found: assuming embodia's radians"
    peak = float(max(v.max() for v in values))
    if peak > 2 * np.pi + 0.5:
        return DEGREES, f"its statistics reach {peak:.1f}: LeRobot's degrees (gripper 0..100)"
    return RADIANS, f"its statistics stay within {peak:.2f}: radians, as embodia records"


# ------------------------------------------------------------------------------------ the policy
@dataclass
class LeRobotInfo:
    """What commands and the server ask of a loaded policy's embodiment (as `Policy.info` answers)."""

    name: str
    cameras: list[str]  # the world's camera keys the policy reads
    image_shapes: dict[str, list[int]]  # world camera key -> [H, W, 3] the policy was trained at
    state_dim: int
    action_dim: int
    fps: float
    state_names: list[str]
    action_names: list[str]
    notes: list[str] = field(default_factory=list)
    normalizer: None = None  # the policy normalises inside its own processors


@dataclass(frozen=True)
class LeRobotModel:
    """What `embodia serve`'s metadata reports as the model (`Policy.cfg` for embodia's own)."""

    head: str
    image_size: int = 0  # 0: any size goes to the worker, which resizes to each camera's own shape
    flow_steps: int = 0


def fit_world(folder: LeRobotPolicyFolder, rename: dict[str, str] | None = None) -> tuple[str, FeatureMap]:
    """The first embodia embodiment the policy fits (cameras by name preferred), and its mapping."""
    fits, errors = [], []
    for name in ("so101", "sawyer", "so101_ee"):
        try:
            fits.append((name, map_features(folder, EMBODIMENTS[name], rename)))
        except LeRobotFolderError as exc:
            errors.append(f"{name}: {exc}")
    exact = [(n, m) for n, m in fits if all(k == v for k, v in m.rename.items())]
    if exact or fits:
        return (exact or fits)[0]
    raise LeRobotFolderError(
        f"{folder.path}: the policy fits none of embodia's worlds.\n" + "\n".join(errors)
    )


class LeRobotPolicy:
    """A LeRobot `pretrained_model` folder behind embodia's ChunkPolicy protocol."""

    def __init__(self, path: str | Path, device: str = "cpu", rename: dict[str, str] | None = None,
                 python: str | Path | None = None):  # fmt: skip
        self.path = Path(path)
        self.folder = LeRobotPolicyFolder.read(self.path)
        self.embodiment, self.features = fit_world(self.folder, rename)
        self.units, why = detect_units(self.path, self.embodiment)
        spec = EMBODIMENTS[self.embodiment]
        shapes = {w: [*self.features.image_shapes[p], 3] for w, p in self.features.rename.items()}
        self.info = LeRobotInfo(
            self.embodiment, list(self.features.rename), shapes, spec.state_dim, spec.action_dim,
            float(spec.fps), list(spec.state_names), list(spec.action_names),
            [*self.features.notes, f"units: {self.units} ({why})"],
        )  # fmt: skip
        self.embodiments = {self.embodiment: self.info}
        self.cfg = LeRobotModel(f"lerobot:{self.folder.policy_type}")
        self._encoder = None
        self.checkpoint_hash = _file_hash(self.path / "model.safetensors")
        self.metadata = {
            "format": "lerobot",
            "type": self.folder.policy_type,
            "checkpoint_hash": self.checkpoint_hash,
        }
        self._lock = threading.Lock()
        self._proc = _start(Path(python) if python else env_python(), self.path, device)
        atexit.register(self.close)
        ready = self._read()
        self.ready = ready
        self.stateful = bool(ready["stateful"])
        self.policy_type = str(ready["type"])
        self.chunk_size = 1 if self.stateful else int(ready["chunk_size"])
        self.n_action_steps = 1 if self.stateful else min(int(ready["n_action_steps"]), self.chunk_size)

    @property
    def encoder(self):
        """embodia's sentence encoder, for matching free text to a scene (`embodia run`); the policy
        itself receives the instruction as text, through its own processors."""
        if self._encoder is None:
            from embodia.policy.language import InstructionEncoder

            self._encoder = InstructionEncoder()
        return self._encoder

    # ------------------------------------------------------------------ ChunkPolicy
    @property
    def settings(self) -> dict[str, Any]:
        """What results.json records about how this policy ran."""
        return {"lerobot_type": self.policy_type, "lerobot_version": self.ready["lerobot"],
                "lerobot_torch": self.ready["torch"], "units": self.units,
                "mode": "step (select_action)" if self.stateful else "chunk (predict_action_chunk)",
                "camera_map": dict(self.features.rename)}  # fmt: skip

    def expected_features(self, embodiment: str | None = None) -> dict[str, dict]:
        """Observation keys with shape and dtype (as `Policy.expected_features`)."""
        feats: dict[str, dict] = {
            c: {"shape": self.info.image_shapes[c], "dtype": "uint8"} for c in self.info.cameras
        }
        feats[OBS_STATE] = {"shape": [self.info.state_dim], "dtype": "float32"}
        feats[TASK] = {"shape": [], "dtype": "str"}
        return feats

    def action_range(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(low, high) of the actions the policy was trained on, in the world's units, from its saved
        statistics (min/max, else mean -+ 3 std); None when it saved none."""
        stats = _normalizer_stats(self.path)
        if f"{ACTION}.min" in stats and f"{ACTION}.max" in stats:
            low, high = stats[f"{ACTION}.min"], stats[f"{ACTION}.max"]
        elif f"{ACTION}.mean" in stats and f"{ACTION}.std" in stats:
            mean, std = stats[f"{ACTION}.mean"], stats[f"{ACTION}.std"]
            low, high = mean - 3 * std, mean + 3 * std
        else:
            return None
        low, high = np.asarray(low, np.float64).reshape(-1), np.asarray(high, np.float64).reshape(-1)
        if self.units == DEGREES:
            low, high = from_lerobot_units(low), from_lerobot_units(high)
        return low, high

    def predict_chunk(self, observations: list[dict[str, Any]], noise_seed=None, episodes=None,
                      embodiment: str | None = None, **guided) -> np.ndarray:  # fmt: skip
        """(B, H, action_dim) float32 in the world's units. `episodes` ((session, chunk index) per row,
        from the executor) keeps a stateful policy's queues per episode. Guided re-planning (`pending`)
        is embodia's own sampler's: refused here."""
        if guided.get("pending") is not None or set(guided) - {"pending", "delay"}:
            raise ValueError(
                f"a LeRobot policy takes no {sorted(guided)} (guided re-planning is embodia's sampler's)"
            )
        if embodiment not in (None, self.embodiment):
            raise ValueError(f"this policy acts for {self.embodiment!r}, not {embodiment!r}")
        if isinstance(observations, dict):
            observations = [observations]
        b = len(observations)
        header: dict[str, Any] = {"op": "chunk", "tasks": [str(o.get(TASK, "")) for o in observations]}
        if noise_seed is not None:
            header["seeds"] = [int(s) for s in ([noise_seed] if np.isscalar(noise_seed) else noise_seed)]
        if self.stateful:
            if episodes is None:
                raise ValueError(
                    f"this {self.policy_type} policy keeps state between steps (observation history or "
                    "temporal ensembling): it needs the episode of each observation (`episodes`)"
                )
            header |= {
                "op": "step",
                "sessions": [int(s) for s, _ in episodes],
                "new": [int(i) == 0 for _, i in episodes],
            }
        arrays = self._arrays(observations)
        with self._lock:
            wire.write_frame(self._proc.stdin, header, arrays)
            reply = self._read()
        actions = reply["arrays"]["action"]
        if actions.ndim != 3 or actions.shape[0] != b:
            raise RuntimeError(f"the LeRobot worker answered shape {actions.shape} for {b} observations")
        if self.units == DEGREES:
            actions = from_lerobot_units(actions)
        return np.asarray(actions, np.float32)

    def reset(self, *args, **kwargs) -> None:
        """Nothing to forget here: a stateful policy's sessions start with each episode's first request."""

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        try:
            with self._lock:
                wire.write_frame(proc.stdin, {"op": "close"})
            proc.wait(timeout=10)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def __enter__(self) -> LeRobotPolicy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"LeRobotPolicy({self.policy_type}, {self.ready['params'] / 1e6:.1f}M params, chunk {self.chunk_size}, "
                f"executes {self.n_action_steps}, {self.embodiment}, {self.units})")  # fmt: skip

    # ------------------------------------------------------------------ internals
    def _arrays(self, observations: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        arrays = {}
        for world_cam, policy_key in self.features.rename.items():
            arrays[policy_key] = np.stack([np.asarray(o[world_cam], np.uint8) for o in observations])
        if OBS_STATE in self.folder.inputs:
            state = np.stack([np.asarray(o[OBS_STATE], np.float64) for o in observations])
            if self.units == DEGREES:
                state = to_lerobot_units(state)
            arrays[OBS_STATE] = state.astype(np.float32)
        return arrays

    def _read(self) -> dict[str, Any]:
        try:
            header, arrays = wire.read_frame(self._proc.stdout)
        except (wire.WireError, OSError, ValueError) as exc:
            code = self._proc.poll()
            raise RuntimeError(
                f"the LeRobot worker for {self.path} stopped ({exc}; exit status {code}); its messages are "
                "above, on stderr"
            ) from None
        if header.get("op") == "error":
            raise RuntimeError(f"LeRobot worker: {header.get('message')}")
        header["arrays"] = arrays
        return header


def _start(python: Path, folder: Path, device: str) -> subprocess.Popen:
    script = Path(wire.__file__)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.setdefault("HF_HUB_OFFLINE", "1")  # a local folder; never fetch at run time
    # -I: the worker sees only its own environment (not embodia's packages, not this folder's modules).
    return subprocess.Popen([str(python), "-I", str(script), str(folder.resolve()), device],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)  # fmt: skip


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_lerobot_folder(path: str | Path | None) -> bool:
    from embodia.policy.lerobot_folder import is_lerobot_policy_folder

    return path is not None and Path(path).is_dir() and is_lerobot_policy_folder(path)
