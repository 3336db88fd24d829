"""The LeRobot worker: runs a LeRobot policy in LeRobot's own environment, answering embodia over a pipe.

LeRobot 0.4.4 pins torch < 2.11, transformers < 5 and huggingface-hub < 0.36; embodia runs on torch 2.13.
The two cannot share one Python environment, so a LeRobot policy runs in this worker, started with the
LeRobot environment's interpreter (`embodia lerobot setup` builds it; `policy/lerobot_policy.py` starts
and stops the worker). This file is both:

* the worker program, `python -I lerobot_worker.py FOLDER`: imports LeRobot and torch only inside
  `serve_folder`, so the module itself needs nothing beyond numpy; and
* the wire format both sides share (`write_frame` / `read_frame`), imported by embodia.

Wire format, one message per frame on stdin / stdout (the worker's own prints go to stderr):
4-byte big-endian header length, a JSON header, then the raw bytes of the arrays the header lists
(`"arrays": [{"name", "dtype", "shape"}]`, C order). No pickle; sizes are checked before reading.

Requests (`op`): `chunk` (images uint8 (B, H, W, 3) under the policy's camera keys, `observation.state`
float32 (B, S) in the policy's units, `tasks` and optional `seeds`; answer `action` (B, H, A)),
`step` (the same plus `sessions` and `new`: one action per row from LeRobot's own `select_action`,
each session a copy of the policy with its own queues), `close`. The worker first sends `ready`
with what it loaded. LeRobot's path is the one `lerobot-eval` takes: uint8 HWC -> float CHW in
[0, 1] -> preprocessor -> policy -> postprocessor.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any, BinaryIO

import numpy as np

MAX_HEADER_BYTES = 1 << 20
MAX_PAYLOAD_BYTES = 1 << 30
DTYPES = ("uint8", "float32", "float64", "int64")
MAX_SESSIONS = 256  # step-mode sessions kept (least recently used dropped)


class WireError(RuntimeError):
    """A frame that breaks the format (or a closed pipe)."""


# ------------------------------------------------------------------------------------ wire format
def write_frame(
    stream: BinaryIO, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None
) -> None:
    arrays = {k: np.ascontiguousarray(v) for k, v in (arrays or {}).items()}
    header = dict(
        header, arrays=[{"name": k, "dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()]
    )
    head = json.dumps(header, allow_nan=False).encode()
    stream.write(struct.pack(">I", len(head)) + head)
    for v in arrays.values():
        stream.write(memoryview(v).cast("B"))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise WireError("the other side closed the pipe")
    return data


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    (n,) = struct.unpack(">I", _read_exact(stream, 4))
    if n > MAX_HEADER_BYTES:
        raise WireError(f"frame header of {n} bytes exceeds {MAX_HEADER_BYTES}")
    header = json.loads(_read_exact(stream, n))
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise WireError("frame header must be a JSON object with a list of arrays")
    specs, total = [], 0
    for spec in header.pop("arrays", []):
        dtype, shape = spec.get("dtype"), spec.get("shape")
        if (
            dtype not in DTYPES
            or not isinstance(shape, list)
            or not all(isinstance(s, int) and s >= 0 for s in shape)
        ):
            raise WireError(f"bad array spec {spec!r}")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += size
        if total > MAX_PAYLOAD_BYTES:
            raise WireError(f"frame payload exceeds {MAX_PAYLOAD_BYTES} bytes")
        specs.append((str(spec.get("name")), dtype, shape, size))
    arrays = {
        name: np.frombuffer(_read_exact(stream, size), dtype).reshape(shape)
        for name, dtype, shape, size in specs
    }
    return header, arrays


# ------------------------------------------------------------------------------------ the worker
def _load(folder: str, device: str):
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    cfg = PreTrainedConfig.from_pretrained(folder)
    cfg.device = device
    policy = get_policy_class(cfg.type).from_pretrained(folder, config=cfg)
    policy.eval()
    pre, post = make_pre_post_processors(
        cfg, pretrained_path=folder, preprocessor_overrides={"device_processor": {"device": device}}
    )
    torch.set_grad_enabled(False)
    return cfg, policy, pre, post


def _stateful(cfg) -> bool:
    """Whether the policy keeps state between calls that `predict_action_chunk` alone would skip:
    observation history (Diffusion's n_obs_steps > 1) or ACT's temporal ensemble."""
    return (
        int(getattr(cfg, "n_obs_steps", 1) or 1) > 1
        or getattr(cfg, "temporal_ensemble_coeff", None) is not None
    )


def _deterministic(cfg) -> bool:
    """ACT at inference takes the VAE's zero latent: no noise, so rows may share one batch."""
    return cfg.type == "act"


def _observation(header: dict, arrays: dict[str, np.ndarray], rows, shapes: dict[str, tuple[int, int]]):
    """embodia's arrays -> LeRobot's batch for `rows`, as `lerobot-eval` builds it."""
    import torch
    import torch.nn.functional as F

    batch: dict[str, Any] = {}
    for key, value in arrays.items():
        t = torch.from_numpy(np.array(value[rows]))
        if value.dtype == np.uint8:  # an image, (b, H, W, 3)
            t = t.permute(0, 3, 1, 2).float().div_(255)
            if key in shapes and tuple(t.shape[2:]) != shapes[key]:
                t = F.interpolate(
                    t, size=shapes[key], mode="bilinear", antialias=True, align_corners=False
                ).clamp_(0, 1)
        batch[key] = t.float()
    batch["task"] = [header["tasks"][i] for i in rows]
    return batch


class _Sessions:
    """Step mode: one shallow copy of the policy per episode (weights shared, queues its own)."""

    def __init__(self, policy):
        self.policy = policy
        self.live: dict[int, Any] = {}

    def get(self, session: int, new: bool):
        import copy

        import torch

        if new or session not in self.live:
            clone = copy.copy(self.policy)
            for k, v in vars(self.policy).items():
                own_state = not k.startswith("_") or k in ("_action_queue", "_queues")
                if own_state and not isinstance(v, torch.nn.Module | torch.Tensor):
                    clone.__dict__[k] = copy.deepcopy(v)
            clone.reset()
            self.live.pop(session, None)
            self.live[session] = clone
            while len(self.live) > MAX_SESSIONS:
                self.live.pop(next(iter(self.live)))
        self.live[session] = self.live.pop(session)  # most recently used last
        return self.live[session]


def _answer(op, header, arrays, ctx) -> np.ndarray:
    import torch

    cfg, policy, pre, post, shapes, sessions = ctx
    b = len(header["tasks"])
    seeds = header.get("seeds") or [None] * b
    if op == "step":
        out = []
        for i, (session, new) in enumerate(zip(header["sessions"], header["new"], strict=True)):
            if seeds[i] is not None:
                torch.manual_seed(int(seeds[i]))
            obs = pre(_observation(header, arrays, [i], shapes))
            action = post(sessions.get(int(session), bool(new)).select_action(obs))
            out.append(action.reshape(1, 1, -1))
        return torch.cat(out).float().cpu().numpy()
    groups = [list(range(b))] if _deterministic(cfg) or seeds[0] is None else [[i] for i in range(b)]
    out = []
    for rows in groups:
        if len(rows) == 1 and seeds[rows[0]] is not None:
            torch.manual_seed(int(seeds[rows[0]]))
        obs = pre(_observation(header, arrays, rows, shapes))
        out.append(post(policy.predict_action_chunk(obs)))
    return torch.cat(out).float().cpu().numpy()


def serve_folder(folder: str, device: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
    import time

    import lerobot
    import torch

    t0 = time.perf_counter()
    try:
        cfg, policy, pre, post = _load(folder, device)
    except Exception as exc:
        write_frame(stdout, {"op": "error", "message": f"loading {folder}: {type(exc).__name__}: {exc}"})
        return
    shapes = {k: tuple(f.shape[1:3]) for k, f in cfg.input_features.items() if str(f.type).endswith("VISUAL")}
    ctx = (cfg, policy, pre, post, shapes, _Sessions(policy))
    write_frame(stdout, {
        "op": "ready", "type": cfg.type, "chunk_size": int(getattr(cfg, "chunk_size", 0) or getattr(cfg, "horizon", 1)),
        "n_action_steps": int(cfg.n_action_steps), "stateful": _stateful(cfg),
        "params": sum(p.numel() for p in policy.parameters()), "lerobot": lerobot.__version__,
        "torch": torch.__version__, "load_s": time.perf_counter() - t0,
    })  # fmt: skip
    while True:
        try:
            header, arrays = read_frame(stdin)
        except WireError:
            return
        op = header.get("op")
        if op == "close":
            return
        try:
            if op not in ("chunk", "step"):
                raise ValueError(f"unknown op {op!r}")
            t = time.perf_counter()
            actions = _answer(op, header, arrays, ctx)
            write_frame(
                stdout, {"op": "actions", "infer_ms": (time.perf_counter() - t) * 1e3}, {"action": actions}
            )
        except Exception as exc:  # the message goes back to embodia, which raises it there
            write_frame(stdout, {"op": "error", "message": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str]) -> int:
    import os

    if len(argv) < 1:
        print("usage: lerobot_worker.py FOLDER [DEVICE]", file=sys.stderr)
        return 2
    # The protocol owns the original stdout; anything LeRobot prints goes to stderr.
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve_folder(argv[0], argv[1] if len(argv) > 1 else "cpu", sys.stdin.buffer, proto_out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
