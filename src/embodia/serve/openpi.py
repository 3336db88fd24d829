"""openpi policy servers (π0, π0.5 served by openpi's `serve_policy.py`) behind eval's `ChunkPolicy`.

openpi speaks the same websocket protocol as `embodia serve` (msgpack-numpy frames, metadata first, an
error as a text frame), but its policies name their inputs after their own training config (LIBERO's
`observation/image`, `observation/wrist_image`, `observation/state`, `prompt`; DROID's
`observation/exterior_image_1_left`, ...), expect images already resized (224 x 224 uint8, letterboxed
by `openpi_client.image_tools.resize_with_pad`), answer `{"actions": (horizon, action_dim)}` and send
metadata that says nothing about chunks or embodiments. An `ObsMap` says all of that in one spec:

    observation.images.front=observation/image,observation.images.wrist=observation/wrist_image,
    observation.state=observation/state,task=prompt,resize=224,steps=5

`embodia eval ws://HOST:PORT --obs-map SPEC` evaluates such a server through `OpenpiPolicy`;
`embodia serve --obs-map SPEC` makes embodia's server accept the mapped keys, so the loop can be
tested end to end with openpi-client itself.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import socket
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from embodia.robots.spec import EMBODIMENTS, get_embodiment
from embodia.serve.client import Client, ServerError
from embodia.serve.schema import RequestError

IMAGE_PREFIX = "observation.images."
STATE = "observation.state"
TASK = "task"
ACTION = "action"  # embodia's name for the action; `action=KEY` names the reply's key
SETTINGS = ("resize", "steps", "embodiment")
DEFAULT_RESIZE = (224, 224)  # what openpi's examples resize to (and its models take)
DEFAULT_STEPS = 5  # openpi's LIBERO example re-plans every 5 actions (its `replan_steps`)
DEFAULT_EMBODIMENT = "so101"
_CAMERA = re.compile(r"[A-Za-z0-9_-]+")
_EXAMPLE = (
    "observation.images.front=observation/image,observation.images.wrist=observation/wrist_image,"
    "observation.state=observation/state,task=prompt"
)


@dataclass(frozen=True)
class ObsMap:
    """Which embodia key travels under which server key, and how an openpi server is driven.

    keys: (embodia key, server key) pairs in the spec's order; only these keys are sent.
    action_key: the reply's key holding the (horizon, action_dim) chunk ("actions" in openpi).
    resize: (height, width) every mapped image is resized to with openpi's resize-with-pad (aspect
        kept, zero-padded, bilinear), or None to send images as rendered.
    steps: actions executed per chunk (openpi's `replan_steps`): the first `steps` of each reply.
    embodiment: the embodiment the actions are for (None: the suite's).
    """

    keys: tuple[tuple[str, str], ...]
    action_key: str = "actions"
    resize: tuple[int, int] | None = DEFAULT_RESIZE
    steps: int = DEFAULT_STEPS
    embodiment: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError(f"--obs-map maps no observation key; e.g. {_EXAMPLE}")
        sources = [src for src, _ in self.keys]
        targets = [dst for _, dst in self.keys]
        for src in sources:
            _check_embodia_key(src)
        for dst in [*targets, self.action_key]:
            if not isinstance(dst, str) or not dst.strip() or dst != dst.strip():
                raise ValueError(f"--obs-map: server key {dst!r} must be a non-empty name without spaces")
        for label, names in (("embodia key", sources), ("server key (target)", targets)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"--obs-map: duplicate {label} {', '.join(map(repr, dup))}")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) < 1):
            raise ValueError(f"--obs-map: resize must be positive HEIGHTxWIDTH, got {self.resize!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"--obs-map: steps must be a positive integer, got {self.steps!r}")
        if self.embodiment is not None and self.embodiment not in EMBODIMENTS:
            raise ValueError(
                f"--obs-map: unknown embodiment {self.embodiment!r}; valid embodiments: {sorted(EMBODIMENTS)}"
            )

    # ------------------------------------------------------------------ the spec text
    @classmethod
    def parse(cls, text: str) -> ObsMap:
        """`embodia.key=server/key,...` plus settings `action=KEY`, `resize=224` (or `224x224`,
        `none`), `steps=N`, `embodiment=NAME`; raises ValueError saying what is wrong."""
        keys: list[tuple[str, str]] = []
        settings: dict[str, str] = {}
        if not text or not text.strip():
            raise ValueError(f"--obs-map is empty; e.g. {_EXAMPLE}")
        for part in text.split(","):
            left, eq, right = (s.strip() for s in part.partition("="))
            if not eq or not left or not right or "=" in right:
                raise ValueError(
                    f"--obs-map: {part.strip()!r} is not EMBODIA_KEY=SERVER_KEY; e.g. {_EXAMPLE}"
                )
            if left in SETTINGS or left == ACTION:
                if left in settings:
                    raise ValueError(f"--obs-map: {left}= is given twice")
                settings[left] = right
            else:
                keys.append((left, right))
        return cls(
            keys=tuple(keys),
            action_key=settings.get(ACTION, "actions"),
            resize=_parse_resize(settings["resize"]) if "resize" in settings else DEFAULT_RESIZE,
            steps=_parse_steps(settings["steps"]) if "steps" in settings else DEFAULT_STEPS,
            embodiment=settings.get("embodiment"),
        )

    def __str__(self) -> str:
        size = "none" if self.resize is None else "x".join(map(str, self.resize))
        parts = [f"{src}={dst}" for src, dst in self.keys] + [f"{ACTION}={self.action_key}"]
        parts += [f"resize={size}", f"steps={self.steps}"]
        return ",".join(parts + ([f"embodiment={self.embodiment}"] if self.embodiment else []))

    # ------------------------------------------------------------------ the two directions
    def to_server(self, obs: dict[str, Any]) -> dict[str, Any]:
        """An embodia observation -> the openpi request: the mapped keys only, renamed; images
        resized with pad (openpi's semantics) and uint8; the state float32; the task a str."""
        missing = [src for src, _ in self.keys if src not in obs]
        if missing:
            raise ValueError(
                f"the observation has no {', '.join(missing)} (named in --obs-map); it has {sorted(obs)}"
            )
        msg: dict[str, Any] = {}
        for src, dst in self.keys:
            value = obs[src]
            if src.startswith(IMAGE_PREFIX):
                value = resize_with_pad(to_uint8(np.asarray(value)), *(self.resize or (None, None)))
            elif src == STATE:
                value = np.asarray(value, dtype=np.float32)
            elif src == TASK:
                value = str(value)
            msg[dst] = value
        return msg

    def rename_to_server(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Mapped embodia keys renamed to their server keys, nothing converted; other keys kept."""
        names = dict(self.keys)
        return {names.get(k, k): v for k, v in obs.items()}

    def from_server(self, msg: Any) -> Any:
        """A request in the server keys -> embodia keys (the server side); every mapped key must be
        there. Unmapped keys (`seed`, `embodiment`, ...) pass through; a non-map is left to the
        request checks."""
        if not isinstance(msg, dict):
            return msg
        missing = [dst for _, dst in self.keys if dst not in msg]
        if missing:
            pairs = ", ".join(f"{dst!r} (as {src})" for src, dst in self.keys)
            raise RequestError(f"the observation is missing {missing}; this server takes {pairs}")
        targets = {dst for _, dst in self.keys}
        out = {k: v for k, v in msg.items() if k not in targets}
        for src, dst in self.keys:
            out[src] = msg[dst]
        return out


def _check_embodia_key(key: str) -> None:
    if key in (STATE, TASK):
        return
    if key.startswith(IMAGE_PREFIX) and _CAMERA.fullmatch(key[len(IMAGE_PREFIX) :]):
        return
    raise ValueError(
        f"--obs-map: unknown embodia key {key!r}; embodia keys are {TASK}, {STATE}, "
        f"{IMAGE_PREFIX}<camera> (e.g. {IMAGE_PREFIX}front) and {ACTION} (the reply's key), settings "
        f"{', '.join(s + '=' for s in SETTINGS)}"
    )


def _parse_resize(text: str) -> tuple[int, int] | None:
    if text.lower() in ("none", "0"):
        return None
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise ValueError(f"--obs-map: resize={text} is not N, HxW or none") from None
    if min(size) < 1:
        raise ValueError(f"--obs-map: resize={text} must be positive")
    return size


def _parse_steps(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--obs-map: steps={text} is not an integer") from None


def obs_map_arg(text: str) -> ObsMap:
    """argparse `type=`: the spec, its ValueError shown as the option's error."""
    try:
        return ObsMap.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


OBS_MAP_HELP = (
    "EMBODIA_KEY=SERVER_KEY pairs, e.g. observation.images.front=observation/image,"
    "observation.state=observation/state,task=prompt; settings action=KEY (the reply's chunk, default "
    f"actions), resize=N|HxW|none (openpi's resize-with-pad, default {DEFAULT_RESIZE[0]}), steps=N "
    f"(actions executed per chunk, default {DEFAULT_STEPS}), embodiment=NAME (default: the suite's)"
)


# ---------------------------------------------------------------------------------- images
def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] to uint8 as openpi's `convert_to_uint8` does (255 * x, truncated)."""
    if image.dtype.kind == "f":
        return (255 * image).astype(np.uint8)
    return image.astype(np.uint8, copy=False)


def resize_with_pad(image: np.ndarray, height: int | None, width: int | None) -> np.ndarray:
    """openpi's resize-with-pad (tf.image.resize_with_pad, as `openpi_client.image_tools` does it with
    PIL): scale by the larger of the two ratios, bilinear, truncate the sides to integers, centre on a
    zero (black) canvas. An image already (height, width), or height None, is returned as it is."""
    if height is None or width is None or image.shape[:2] == (height, width):
        return image
    from PIL import Image  # Pillow comes with matplotlib, a dependency

    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    cur_h, cur_w = image.shape[:2]
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = int(cur_h / ratio), int(cur_w / ratio)
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((new_w, new_h), resample=Image.BILINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = max(0, (height - new_h) // 2), max(0, (width - new_w) // 2)
    out[top : top + new_h, left : left + new_w] = np.asarray(resized)
    return out


# ---------------------------------------------------------------------------------- replies
def check_reply(reply: Any, action_key: str, steps: int, embodiment: str) -> np.ndarray:
    """The first `steps` actions of an openpi reply, float32 (steps, action_dim), or a ServerError
    saying what is wrong with it. Nothing non-finite is returned."""
    if not isinstance(reply, dict):
        raise ServerError(f"the server's reply is a {type(reply).__name__}, not a map")
    if action_key not in reply:
        raise ServerError(
            f"the server's reply has no {action_key!r} (it has {sorted(map(str, reply))}); "
            "name the reply's key with action=KEY in --obs-map"
        )
    try:
        actions = np.asarray(reply[action_key])
    except (TypeError, ValueError) as exc:
        raise ServerError(f"the server's {action_key!r} is not an array ({exc})") from None
    if actions.dtype.kind not in "iuf":
        raise ServerError(f"the server's {action_key!r} must be numbers, got dtype {actions.dtype}")
    spec = get_embodiment(embodiment)
    dim = len(spec.action_names)
    if actions.ndim != 2:
        raise ServerError(f"the server's {action_key!r} has shape {actions.shape}; expected (horizon, {dim})")
    if actions.shape[1] != dim:
        raise ServerError(
            f"the server's actions have {actions.shape[1]} dimensions; {embodiment} takes {dim} "
            f"({', '.join(spec.action_names)}). openpi pads actions to the model's width: the policy's "
            f"output transform must return the first {dim} (as LiberoOutputs returns 7)"
        )
    if actions.shape[0] < steps:
        raise ServerError(
            f"the server returned {actions.shape[0]} actions per chunk; steps={steps} in --obs-map "
            f"executes {steps}: lower steps="
        )
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
        out = actions[:steps].astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise ServerError(
            "the server replied with NaN or inf actions (or beyond float32); none were executed"
        )
    return out


# ---------------------------------------------------------------------------------- clients
class EmbodiaOpenpiClient:
    """openpi's client interface (`infer`, `get_server_metadata`, `reset`) over embodia's `Client`,
    used where openpi-client is not installed."""

    def __init__(self, url: str, api_key: str | None = None):
        self._client = Client(url, api_key)

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        return self._client.infer(obs)

    def get_server_metadata(self) -> dict[str, Any]:
        return self._client.metadata

    def reset(self) -> None:
        """The server keeps no state between requests."""

    def close(self) -> None:
        self._client.close()


def connect(url: str, api_key: str | None = None, timeout: float = 10.0):
    """A client of the openpi server at ws://HOST:PORT: openpi-client's `WebsocketClientPolicy` when
    it is installed, else `EmbodiaOpenpiClient`. An unreachable server is a ConnectionError at once
    (openpi-client itself waits for a refused port forever)."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"an openpi policy server's URL looks like ws://HOST:PORT, got {url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"cannot reach the policy server at {url}: {exc}") from None
    try:
        from openpi_client.websocket_client_policy import WebsocketClientPolicy
    except ImportError:
        return EmbodiaOpenpiClient(parts.geturl(), api_key)
    from websockets.exceptions import WebSocketException

    try:
        with warnings.catch_warnings():  # its bare connect() trips a deprecation in websockets >= 14
            warnings.simplefilter("ignore", DeprecationWarning)
            return WebsocketClientPolicy(host=parts.geturl(), api_key=api_key)
    except (OSError, WebSocketException) as exc:
        raise ConnectionError(f"cannot reach the policy server at {url}: {exc}") from None


class OpenpiPolicy:
    """An openpi policy server behind eval's `ChunkPolicy`: each observation goes through the
    `ObsMap` as one `infer` call; each reply is checked (`check_reply`) and its first `steps` actions
    are the chunk. openpi servers draw their own noise and take no pending actions, so `noise_seed`
    is ignored and `pending` refused."""

    def __init__(self, client: Any, obs_map: ObsMap, url: str = ""):
        self.client = client
        self.obs_map = obs_map
        self.url = url
        self.chunk_size = self.n_action_steps = obs_map.steps
        self.embodiment = obs_map.embodiment or DEFAULT_EMBODIMENT
        # Without embodiment= in the spec, `evaluate` acts as the suite's (so101, sawyer, ...).
        self.embodiments = (self.embodiment,) if obs_map.embodiment else tuple(EMBODIMENTS)
        self.checkpoint_hash = ""
        md = client.get_server_metadata()
        self.metadata: dict[str, Any] = dict(md) if isinstance(md, dict) else {}

    @classmethod
    def connect(cls, url: str, obs_map: ObsMap, api_key: str | None = None) -> OpenpiPolicy:
        return cls(connect(url, api_key), obs_map, url)

    def predict_chunk(
        self,
        observations: dict[str, Any] | list[dict[str, Any]],
        pending: np.ndarray | None = None,
        delay: int = 0,
        noise_seed: int | list[int] | None = None,
    ) -> np.ndarray:
        """(B, steps, action_dim) float32, one `infer` per observation."""
        if pending is not None or delay:
            raise ValueError(
                "openpi servers take no pending actions (real-time chunking): use --join naive or blend"
            )
        if isinstance(observations, dict):
            observations = [observations]
        chunks = []
        for obs in observations:
            reply = self._infer(self.obs_map.to_server(obs))
            chunks.append(check_reply(reply, self.obs_map.action_key, self.obs_map.steps, self.embodiment))
        return np.stack(chunks)

    def _infer(self, message: dict[str, Any]) -> Any:
        from websockets.exceptions import WebSocketException

        try:
            return self.client.infer(message)
        except ServerError:
            raise
        except (RuntimeError, OSError, WebSocketException) as exc:  # openpi-client: RuntimeError
            raise ServerError(f"{self.url or 'the policy server'}: {exc}") from None

    @property
    def image_size(self) -> int | None:
        """openpi servers do not say what their cameras were trained at (eval's --image-size)."""
        return None

    def reset(self) -> None:
        if hasattr(self.client, "reset"):
            self.client.reset()

    def close(self) -> None:
        """Close the connection (openpi-client's policy has no close(): its websocket is closed)."""
        if hasattr(self.client, "close"):
            self.client.close()
        elif getattr(self.client, "_ws", None) is not None:
            with contextlib.suppress(Exception):
                self.client._ws.close()

    def __repr__(self) -> str:
        return f"OpenpiPolicy({self.url!r}, {self.obs_map})"
