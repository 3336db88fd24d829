"""`Policy`: a trained VLA with everything needed to act — normalisation stats, embodiments, camera
order, chunking — behind one call, `predict_chunk(observations) -> raw actions`.

    policy = Policy.from_pretrained("path/to/checkpoint")   # or Policy.from_pretrained() for the base
    policy = Policy.from_pretrained("metaworld_mt10")       # a shipped policy, by name
    chunk = policy.predict_chunk([obs])                       # (1, chunk_size, action_dim)
    for a in chunk[0, : policy.n_action_steps]: env.step(a)

or, LeRobot-style, one action per call from the policy's own action queue (a `ChunkExecutor`):

    policy.reset(seed=0)
    while ...: obs, ... = env.step(policy.select_action(obs))

Observations use the dataset/environment keys ('observation.images.<camera>' uint8 H x W x 3,
'observation.state', 'task'); other image sizes are letterboxed to the model's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodia.policy.checkpoint import (
    BASE_DIR,
    FORMAT,
    FORMAT_VERSION,
    METAWORLD_MT10_DIR,
    METAWORLD_MT50_DIR,
    CheckpointError,
    check_policy_folder,
    file_hash,
    read_json,
    read_tensors,
    resolve_policy,
    write_folder,
)
from embodia.policy.executor import ExecutionConfig, executor_for, rtc_weights, step_policy
from embodia.policy.fast import FastSampler
from embodia.policy.inputs import (
    EmbodimentInfo,
    action_dim_mask,
    encode_instructions,
    model_inputs,
    to_delta,
    to_numpy_actions,
)
from embodia.policy.model import VLA, Guide, VLAConfig
from embodia.policy.normalize import Normalizer
from embodia.robots.spec import OBS_STATE, TASK

# The shipped folders are defined next to their resolver in checkpoint.py; code imports them from here too.
__all__ = ["BASE_DIR", "METAWORLD_MT10_DIR", "METAWORLD_MT50_DIR", "Policy"]


class Policy:
    def __init__(
        self,
        model: VLA,
        embodiments: dict[str, EmbodimentInfo],
        default_embodiment: str | None = None,
        metadata: dict | None = None,
        encoder=None,
        fast: bool = True,
    ):
        if not embodiments:
            raise ValueError("a policy needs at least one embodiment")
        self.model = model.eval()
        self.cfg: VLAConfig = model.cfg
        self.embodiments = embodiments
        self.embodiment = default_embodiment or next(iter(embodiments))
        if self.embodiment not in embodiments:
            raise ValueError(f"unknown embodiment {self.embodiment!r}; have {sorted(embodiments)}")
        self.metadata = dict(metadata or {})
        self._encoder = encoder
        self.checkpoint_hash = self.metadata.get("checkpoint_hash", "")
        self.path: Path | None = None
        # Frozen traces of the model for low-latency acting (see policy/fast.py); `fast=False` runs
        # the eager module, e.g. after changing the weights in place.
        # The traces are for the built-in backbone; a transformers backbone runs eagerly.
        self._fast = FastSampler(self.model) if fast and model.cfg.backbone == "cnn" else None
        self._executor = None  # select_action's action queue

    # ------------------------------------------------------------------ properties every consumer uses
    @property
    def chunk_size(self) -> int:
        return self.cfg.chunk_size

    @property
    def n_action_steps(self) -> int:
        return self.cfg.n_action_steps

    @property
    def info(self) -> EmbodimentInfo:
        return self.embodiments[self.embodiment]

    @property
    def encoder(self):
        if self._encoder is None:
            from embodia.policy.language import InstructionEncoder

            self._encoder = InstructionEncoder()
        return self._encoder

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reset(self, seed: int | None = None, execution: ExecutionConfig | None = None) -> None:
        """Start an episode for `select_action`: empty its action queue; `seed` seeds the episode's
        sampling noise (with None, 0), `execution` how chunks are executed (default: this policy's
        n_action_steps per chunk). `predict_chunk` itself is stateless."""
        self._executor = executor_for(self, execution)
        self._executor.reset(seed or 0)

    def select_action(self, observation: dict[str, Any]) -> np.ndarray:
        """The action for this control tick, from the policy's action queue (a new chunk is predicted
        when the queue runs out; see embodia.policy.executor). Call `reset()` at each episode's start."""
        if self._executor is None:
            self.reset()
        return step_policy(self, self._executor, observation)

    # ------------------------------------------------------------------ acting
    def expected_features(self, embodiment: str | None = None) -> dict[str, dict]:
        """Observation keys with shape and dtype, enough for a client to build a valid observation."""
        info = self.embodiments[embodiment or self.embodiment]
        feats: dict[str, dict] = {}
        for cam in info.cameras:
            shape = info.image_shapes.get(cam, [self.cfg.image_size, self.cfg.image_size, 3])
            feats[cam] = {"shape": list(shape), "dtype": "uint8"}
        feats[OBS_STATE] = {"shape": [info.state_dim], "dtype": "float32"}
        feats[TASK] = {"shape": [], "dtype": "str"}
        return feats

    def _check(self, obs: dict[str, Any], info: EmbodimentInfo) -> None:
        missing = [k for k in [*info.cameras, OBS_STATE, TASK] if k not in obs]
        if missing:
            raise ValueError(
                f"observation is missing {missing}; this policy expects {sorted(self.expected_features())}"
            )
        state = np.asarray(obs[OBS_STATE])
        if state.shape != (info.state_dim,):
            raise ValueError(f"{OBS_STATE} has shape {state.shape}; expected ({info.state_dim},)")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"{OBS_STATE} contains NaN or inf")
        for cam in info.cameras:
            img = np.asarray(obs[cam])
            if img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"{cam} has shape {img.shape}; expected (H, W, 3) uint8")

    @torch.inference_mode()
    def predict_chunk(
        self,
        observations: dict[str, Any] | list[dict[str, Any]],
        embodiment: str | None = None,
        noise: torch.Tensor | None = None,
        steps: int | None = None,
        pending: np.ndarray | None = None,
        delay: int = 0,
        noise_seed: int | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Raw actions (B, chunk_size, action_dim) float32 for a batch of observations.

        Noise: `noise_seed` (one int per observation) draws each row's starting noise from its own
        generator, so a row's chunk does not depend on the rest of the batch (the executor seeds it by
        episode and chunk index; the server by the request's `seed`); `noise` gives it directly
        (B, H, max_action_dim), standard normal; with neither, torch's global generator.

        Real-time chunking: `pending` (B, P, action_dim) are the actions of the previous chunk that
        will still run from the moment this observation was taken; the first `delay` of them execute
        while this call computes, so the new chunk reproduces them exactly, and the rest of the overlap
        is inpainted with weights decaying to 0 (`rtc_weights`), so the new chunk joins the old one
        without a jump.
        """
        if isinstance(observations, dict):
            observations = [observations]
        info = self.embodiments[embodiment or self.embodiment]
        for obs in observations:
            self._check(obs, info)
        device, b, cfg = self.device, len(observations), self.cfg
        if noise is None and noise_seed is not None:
            noise = self.seeded_noise(noise_seed, b)
        images = []
        for cam in info.cameras:
            arr = np.stack([np.asarray(o[cam], dtype=np.uint8) for o in observations])
            images.append(torch.from_numpy(arr).permute(0, 3, 1, 2))
        state = torch.from_numpy(np.stack([np.asarray(o[OBS_STATE], np.float32) for o in observations]))
        language = encode_instructions(self.encoder, [str(o[TASK]) for o in observations])
        built = model_inputs(
            info, images, state, language, cfg.image_size, cfg.max_cameras, cfg.max_state_dim
        )
        # The inputs follow the model (a tensor already there is not touched: every torch call hands
        # the interpreter lock over, which costs time in a busy server).
        inputs = {k: v if v.device == device else v.to(device) for k, v in built.items()}
        mask = action_dim_mask(info, b, cfg.max_action_dim).to(device)
        guide = None if pending is None else self._guide(info, pending, delay, b, state, device)
        noise = None if noise is None else noise.to(device)
        if self._fast is not None and device.type == "cpu":
            chunk = self._fast.sample(inputs, dim_mask=mask, noise=noise, steps=steps, guide=guide)
        else:
            prefix = self.model.encode_prefix(**inputs)
            chunk = self.model.sample(prefix, dim_mask=mask, noise=noise, steps=steps, guide=guide)
        return to_numpy_actions(info, chunk.cpu(), state)

    def seeded_noise(self, noise_seed: int | Sequence[int], batch: int) -> torch.Tensor:
        """Standard-normal starting noise (B, H, max_action_dim), row i from a generator seeded with
        `noise_seed[i]` (the same numbers as the server draws for a request with that `seed`)."""
        seeds = [noise_seed] if isinstance(noise_seed, int | np.integer) else list(noise_seed)
        if len(seeds) != batch:
            raise ValueError(f"noise_seed needs one seed per observation ({batch}), got {len(seeds)}")
        shape = (self.cfg.chunk_size, self.cfg.max_action_dim)
        return torch.stack(
            [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        )

    def _guide(
        self, info: EmbodimentInfo, pending: np.ndarray, delay: int, batch: int, state, device
    ) -> Guide:
        pending = np.asarray(pending, dtype=np.float32)
        if pending.ndim == 2:
            pending = pending[None]
        h = self.chunk_size
        if pending.ndim != 3 or pending.shape[0] != batch or pending.shape[2] != info.action_dim:
            raise ValueError(
                f"pending actions must have shape (batch {batch}, P, {info.action_dim}); got {pending.shape}"
            )
        if not np.all(np.isfinite(pending)):
            raise ValueError("pending actions contain NaN or inf")
        p = min(pending.shape[1], h)
        weights = torch.from_numpy(rtc_weights(h, p, delay))  # checks delay
        target = torch.zeros(batch, h, self.cfg.max_action_dim)
        known = to_delta(info, torch.from_numpy(pending[:, :p]).double(), state.double())
        target[:, :p, : info.action_dim] = info.normalizer.normalize_action(known).float()
        return Guide(target.to(device), weights[None, :, None].expand(batch, h, 1).to(device))

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path, extra_files: dict[str, Any] | None = None) -> Path:
        weights = {k: v for k, v in self.model.state_dict().items()}
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "model": self.cfg.to_dict(),
            "default_embodiment": self.embodiment,
            "embodiments": {n: e.to_dict() for n, e in self.embodiments.items()},
            "metadata": {k: v for k, v in self.metadata.items() if k != "checkpoint_hash"},
        }
        norms = {n: e.normalizer.to_dict() for n, e in self.embodiments.items()}
        files = {"config.json": config, "normalization.json": norms, "model.safetensors": weights}
        files.update(extra_files or {})
        out = write_folder(path, files)
        self.checkpoint_hash = file_hash(out / "model.safetensors")
        self.path = out
        return out

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str = "cpu", encoder=None, fast: bool = True
    ) -> Policy:
        """Load a checkpoint folder or a shipped policy by name ('base', 'metaworld_mt10',
        'metaworld_mt50'; see `resolve_policy` for which wins when both exist); with no path, the base."""
        root = check_policy_folder(resolve_policy(path))
        config = read_json(root / "config.json")
        if config.get("format") != FORMAT:
            raise CheckpointError(
                f"{root / 'config.json'}: not an embodia policy (format {config.get('format')!r})"
            )
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"{root}: checkpoint format {config['format_version']} is newer than this embodia "
                f"understands ({FORMAT_VERSION}); upgrade embodia"
            )
        try:
            cfg = VLAConfig.from_dict(config["model"])
            norms = read_json(root / "normalization.json")
            embodiments = {
                name: EmbodimentInfo.from_dict(d, Normalizer.from_dict(norms[name]))
                for name, d in config["embodiments"].items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{root}: config.json / normalization.json are inconsistent ({exc!r})"
            ) from None
        model = VLA(cfg)
        weights = read_tensors(root / "model.safetensors")
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise CheckpointError(
                f"{root / 'model.safetensors'}: weights do not match config.json "
                f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        meta = dict(config.get("metadata", {}))
        meta["checkpoint_hash"] = file_hash(root / "model.safetensors")
        policy = cls(model.to(device), embodiments, config.get("default_embodiment"), meta, encoder, fast)
        policy.path = root
        return policy

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def __repr__(self) -> str:
        return (
            f"Policy({self.cfg.head}, {self.num_parameters() / 1e6:.1f}M params, chunk {self.chunk_size}, "
            f"executes {self.n_action_steps}, embodiments {sorted(self.embodiments)})"
        )
