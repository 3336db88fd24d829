"""What the server tells clients (metadata) and how it checks what they send (requests).

Kept free of torch and web frameworks: it sees the policy only through `ServedSpec`, so the checks are
unit-testable and the client can import the same constants.

A request is one observation map, as openpi clients send it, plus optional embodia fields:

    observation.images.<camera>  (H, W, 3) uint8; any H x W with sides up to MAX_IMAGE_SIDE (1920)
                                 and an aspect ratio up to MAX_ASPECT (4:1): the server resizes it to
                                 the model's input (longer side first, then letterboxed) before it
                                 queues the request; also accepted: (3, H, W), integer arrays within
                                 0..255, float arrays within [0, 1] (scaled by 255, as openpi's image
                                 tools do)
    observation.state            (state_dim,) any real dtype whose values fit float32; no NaN / inf
    task | prompt                the instruction (openpi clients call it `prompt`), at most
                                 MAX_INSTRUCTION_CHARS (1,024) characters
    pending, delay               real-time chunking: the previous chunk's actions that will still run
                                 (P, action_dim), and how many of them execute during inference
    seed                         fixes the flow-matching noise, so the same request gives the same chunk
    embodiment                   which of the checkpoint's embodiments to act as (default: its default)

Unknown keys are ignored (openpi clients often send extra fields); missing or malformed ones are
errors that say what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASK = "task"
PROMPT = "prompt"  # openpi's name for the instruction
STATE = "observation.state"
OPTION_KEYS = ("pending", "delay", "seed", "embodiment")
MAX_SEED = 2**63 - 1
# The largest image side accepted (full HD), and the most elongated aspect ratio: the cost of fitting
# an image to the model's input grows with its area, so both are checked before anything is allocated.
MAX_IMAGE_SIDE = 1920
MAX_ASPECT = 4.0
# The longest instruction accepted: the encoder reads only its first 32 tokens (policy.language cuts
# library callers' text at the same length, MAX_CHARS), and longer text would be read against the task
# catalogue and remembered in full: refused before any of that.
MAX_INSTRUCTION_CHARS = 1024
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(ValueError):
    """The request does not match what the served policy expects; the message says what it expects."""


@dataclass(frozen=True)
class EmbodimentView:
    """One embodiment of the served checkpoint, as clients see it."""

    name: str
    features: dict[str, dict]  # Policy.expected_features(name): key -> {"shape", "dtype"}
    cameras: tuple[str, ...]
    state_dim: int
    action_dim: int
    fps: float
    action_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServedSpec:
    default: str
    embodiments: dict[str, EmbodimentView]
    chunk_size: int
    n_action_steps: int
    checkpoint_hash: str = ""
    checkpoint_path: str | None = None
    model: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_policy(cls, policy) -> ServedSpec:
        views = {}
        for name, info in policy.embodiments.items():
            views[name] = EmbodimentView(
                name=name,
                features=policy.expected_features(name),
                cameras=tuple(info.cameras),
                state_dim=int(info.state_dim),
                action_dim=int(info.action_dim),
                fps=float(info.fps),
                action_names=tuple(info.action_names),
                state_names=tuple(info.state_names),
            )
        cfg = policy.cfg
        path = getattr(policy, "path", None)
        return cls(
            default=policy.embodiment,
            embodiments=views,
            chunk_size=int(policy.chunk_size),
            n_action_steps=int(policy.n_action_steps),
            checkpoint_hash=str(policy.checkpoint_hash or ""),
            checkpoint_path=None if path is None else str(path),
            model={"head": cfg.head, "image_size": int(cfg.image_size), "flow_steps": int(cfg.flow_steps)},
        )


def describe(view: EmbodimentView) -> str:
    """One line listing the expected observation, for error messages."""
    parts = []
    for key, f in view.features.items():
        if key == TASK:
            parts.append(f"'{TASK}' (or '{PROMPT}') str")
        elif key in view.cameras:
            parts.append(f"'{key}' uint8 (H, W, 3), trained at {tuple(f['shape'])}")
        else:
            parts.append(f"'{key}' {f['dtype']} {tuple(f['shape'])}")
    return "expected " + ", ".join(parts)


def metadata(spec: ServedSpec, max_message_bytes: int, version: str = "") -> dict[str, Any]:
    """The map sent on connect and from GET /v1/metadata: enough to build a valid observation."""

    def embodiment_entry(view: EmbodimentView) -> dict[str, Any]:
        obs = {}
        for key, f in view.features.items():
            entry = {"shape": list(f["shape"]), "dtype": f["dtype"]}
            if key in view.cameras:
                entry["any_size"] = True  # other sizes are letterboxed to the model's input
            obs[key] = entry
        return {
            "observation": obs,
            "cameras": list(view.cameras),
            "state_dim": view.state_dim,
            "state_names": list(view.state_names),
            "action": {
                "shape": [spec.chunk_size, view.action_dim],
                "dtype": "float32",
                "names": list(view.action_names),
            },
            "action_dim": view.action_dim,
            "fps": view.fps,
        }

    default = spec.embodiments[spec.default]
    return {
        "server": "embodia",
        "version": version,
        "protocol": "openpi msgpack-numpy over websocket (binary frames); errors as a text frame",
        "embodiment": spec.default,
        **embodiment_entry(default),
        "instruction_keys": [TASK, PROMPT],
        "max_instruction_chars": MAX_INSTRUCTION_CHARS,
        "chunk_size": spec.chunk_size,
        "n_action_steps": spec.n_action_steps,
        "embodiments": {name: embodiment_entry(v) for name, v in spec.embodiments.items()},
        "checkpoint": {"hash": spec.checkpoint_hash, "path": spec.checkpoint_path},
        "model": dict(spec.model),
        "options": {
            "pending": "(P, action_dim) actions of the previous chunk still to run (real-time chunking)",
            "delay": "int in 0..P: how many pending actions execute during inference",
            "seed": f"int in 0..{MAX_SEED}: fixes the sampling noise",
            "embodiment": f"one of {sorted(spec.embodiments)}",
        },
        "max_message_bytes": int(max_message_bytes),
    }


@dataclass
class Request:
    observation: dict[str, Any]  # keys exactly as Policy.predict_chunk wants them
    embodiment: str
    pending: np.ndarray | None = None  # (1, P, action_dim) float32
    delay: int = 0
    seed: int | None = None


def _array(value: Any, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise RequestError(f"'{key}' is not a rectangular array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise RequestError(f"'{key}' must be numeric, got dtype {arr.dtype}")
    return arr


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"'{key}' must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise RequestError(f"'{key}' must be in {low}..{high}, got {value}")
    return value


def _nominal_shape(value: Any) -> tuple[int, ...]:
    """The shape an array or a nested list claims (a list's first elements, at most 4 levels), read
    without converting anything: a JSON image is checked before it becomes an array."""
    if isinstance(value, np.ndarray):
        return value.shape
    shape = []
    while isinstance(value, list) and len(shape) < 4:
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _image_shape(shape: tuple[int, ...], key: str, trained: tuple) -> tuple[int, int]:
    """(H, W) of an (H, W, 3) or (3, H, W) image within the accepted size, or a RequestError."""
    if len(shape) == 3 and shape[-1] != 3 and shape[0] == 3:
        shape = (*shape[1:], 3)
    if len(shape) != 3 or shape[-1] != 3 or min(shape[:2]) < 1:
        raise RequestError(
            f"'{key}' has shape {shape}; expected an RGB image (H, W, 3) uint8 "
            f"(trained at {trained}; other sizes are letterboxed)"
        )
    h, w = shape[:2]
    if max(h, w) > MAX_IMAGE_SIDE or max(h, w) > MAX_ASPECT * min(h, w):
        raise RequestError(
            f"'{key}' is {h} x {w}; images up to {MAX_IMAGE_SIDE} pixels a side with an aspect ratio "
            f"up to {MAX_ASPECT:g}:1 are accepted (trained at {trained}: send that size, e.g. resize "
            "on the client)"
        )
    return h, w


def _image(value: Any, key: str, view: EmbodimentView) -> np.ndarray:
    trained = tuple(view.features[key]["shape"])
    _image_shape(_nominal_shape(value), key, trained)  # before any conversion
    arr = _array(value, key)
    if arr.ndim == 3 and arr.shape[-1] != 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)  # (3, H, W) channel-first, as some openpi clients send
    _image_shape(arr.shape, key, trained)  # a ragged list may claim one shape and be another
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise RequestError(f"'{key}' has values outside 0..255 ({arr.min()}..{arr.max()})")
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise RequestError(f"'{key}' contains NaN or inf")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise RequestError(
                f"'{key}' is a float image with values {arr.min():.3g}..{arr.max():.3g}; float images "
                "must be in [0, 1] (send uint8 for 0..255)"
            )
        return np.rint(arr * 255.0).astype(np.uint8)
    raise RequestError(f"'{key}' has dtype {arr.dtype}; expected uint8")


def _real(value: Any, key: str, shape_ok, expected: str) -> np.ndarray:
    """A real-valued array safely cast to float32: finite before and after the cast."""
    arr = _array(value, key)
    if arr.dtype.kind == "b":
        raise RequestError(f"'{key}' must be real-valued, got bool")
    if not shape_ok(arr.shape):
        raise RequestError(f"'{key}' has shape {arr.shape}; expected {expected}")
    if not np.all(np.isfinite(arr)):
        raise RequestError(f"'{key}' contains NaN or inf")
    if arr.size and float(np.max(np.abs(arr))) > _FLOAT32_MAX:
        raise RequestError(f"'{key}' has values beyond the float32 range")
    # A copy: small, and decoded arrays are read-only views of the message (torch warns on those).
    return np.array(arr, dtype=np.float32, order="C", copy=True)


def _instruction(msg: dict[str, Any], view: EmbodimentView) -> str:
    text = msg.get(TASK, msg.get(PROMPT))
    if text is None:
        raise RequestError(
            f"the observation has no instruction: send '{TASK}' (or '{PROMPT}'); {describe(view)}"
        )
    if isinstance(text, bytes):
        if len(text) > 4 * MAX_INSTRUCTION_CHARS:  # (UTF-8: at most 4 bytes a character) before decoding
            raise RequestError(_too_long(len(text), "bytes"))
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(f"'{TASK}' is not UTF-8 text") from None
    if isinstance(text, np.ndarray) and text.ndim == 0 and text.dtype.kind == "U":
        text = str(text)
    if not isinstance(text, str):
        raise RequestError(f"'{TASK}' must be a string, got {type(text).__name__}")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise RequestError(_too_long(len(text), "characters"))
    return str(text)


def _too_long(n: int, unit: str) -> str:
    return (
        f"'{TASK}' has {n:,} {unit}: an instruction may have at most {MAX_INSTRUCTION_CHARS} characters "
        "(one short sentence is what the policy reads)"
    )


def parse_request(msg: Any, spec: ServedSpec) -> Request:
    """Validate and normalise one observation map; raises RequestError saying what was expected."""
    if not isinstance(msg, dict):
        raise RequestError(f"a request must be a map of observation keys, got {type(msg).__name__}")
    bad_keys = [k for k in msg if not isinstance(k, str)]
    if bad_keys:
        raise RequestError(f"observation keys must be strings, got {bad_keys[:3]!r}")
    name = msg.get("embodiment", spec.default)
    if not isinstance(name, str):  # a list or map would be unhashable: a client mistake, said as one
        raise RequestError(
            f"'embodiment' must be a string, one of {sorted(spec.embodiments)}; got {type(name).__name__}"
        )
    if name not in spec.embodiments:
        raise RequestError(f"unknown embodiment {name!r}; this server has {sorted(spec.embodiments)}")
    view = spec.embodiments[name]
    missing = [k for k in view.features if k != TASK and k not in msg]
    if missing:
        raise RequestError(f"the observation is missing {missing}; {describe(view)}")
    obs: dict[str, Any] = {TASK: _instruction(msg, view)}
    for cam in view.cameras:
        obs[cam] = _image(msg[cam], cam, view)
    obs[STATE] = _real(msg[STATE], STATE, lambda s: s == (view.state_dim,), f"({view.state_dim},) float32")
    request = Request(obs, name)

    pending = msg.get("pending")
    if pending is not None:
        d = view.action_dim
        arr = _real(
            pending,
            "pending",
            lambda s: (
                (len(s) == 2 and s[0] >= 1 and s[1] == d)
                or (len(s) == 3 and s[0] == 1 and s[1] >= 1 and s[2] == d)
            ),
            f"(P, {d}) with P >= 1",
        )
        request.pending = arr.reshape(1, -1, d)
        p = min(request.pending.shape[1], spec.chunk_size)
        request.delay = _int(msg.get("delay", 0), "delay", 0, p)
    elif msg.get("delay") not in (None, 0):
        raise RequestError("'delay' needs 'pending' (the previous chunk's actions still to run)")
    if msg.get("seed") is not None:
        request.seed = _int(msg["seed"], "seed", 0, MAX_SEED)
    return request
