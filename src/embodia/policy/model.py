"""A compact vision-language-action model in the pi0 / SmolVLA family, small enough for a 2-core CPU.

    images (per camera) --CNN + FiLM(instruction)--> spatial tokens ┐
    instruction (frozen MiniLM per-token states) -------> tokens   ├─ prefix encoder (bidirectional)
    state (zero-padded) -> 1 token;  embodiment -> 1 token ---------┘         │ computed once per chunk
                                                                              ▼
    noisy action chunk x_t (H tokens) + flow time t ──> action expert (cross-attends to the prefix)
                                                        └──> velocity v(x_t, t)  (flow matching)

Flow matching as in pi0: x_t = t * noise + (1 - t) * actions, target u = noise - actions, t drawn from
Beta(1.5, 1) (more weight near the noisy end; `sample_flow_time`, the one definition, which the
training loop uses too); inference integrates from t = 1 to 0 with a few Euler steps. An L1-regression
head on the same backbone (`head="l1"`) predicts the chunk in one pass.

State and action are zero-padded to `max_state_dim` / `max_action_dim` with masks, cameras to
`max_cameras` with an image mask, so several embodiments share one network (cross-embodiment).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from embodia.configs import opt
from embodia.policy.language import HIDDEN as LANG_DIM


@dataclass
class VLAConfig:
    image_size: int = 96
    max_cameras: int = 2
    max_state_dim: int = 32
    max_action_dim: int = 32
    chunk_size: int = 16  # H: actions predicted per chunk
    n_action_steps: int = 8  # actions executed before re-planning (used by every consumer)
    d_model: int = 192
    n_heads: int = 4
    prefix_layers: int = 4
    expert_layers: int = 4
    cnn_channels: tuple[int, ...] = (32, 64, 96, 128)
    # Spatial-softmax keypoint tokens per camera (0 = none), read after `keypoint_block` CNN blocks
    # (96 px -> 24 x 24 after 2). See KeypointReadout for why.
    keypoints: int = 0
    keypoint_block: int = 2
    num_embodiments: int = 4
    head: str = opt("flow", "action head: flow (flow matching) or l1 (regression)", choices=("flow", "l1"))
    flow_steps: int = 10
    # Scale of the starting noise at inference (the sampler's temperature): 1 samples the learned action
    # distribution, below 1 concentrates on its likelier part, 0 is deterministic. Training ignores it.
    flow_noise_scale: float = 1.0
    dropout: float = 0.0
    embodiments: list[str] = field(default_factory=lambda: ["so101", "so101_ee", "sawyer"])
    # Vision: "cnn" (the built-in FiLM CNN, trained from scratch) or "hf:<local folder>", a pretrained
    # transformers vision model (see policy/backbones.py). backbone_config is filled in on the first
    # build so that a checkpoint can rebuild the backbone without the folder.
    backbone: str = opt(
        "cnn",
        "vision: cnn (built in, trained from scratch) or hf:<local folder>, a pretrained transformers "
        "vision model (config.json + model.safetensors; nothing is downloaded)",
    )
    backbone_config: dict | None = None

    def __post_init__(self) -> None:
        if self.head not in ("flow", "l1"):
            raise ValueError(f"head must be 'flow' or 'l1', got {self.head!r}")
        if not 0 < self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps must be in 1..chunk_size ({self.chunk_size}), got {self.n_action_steps}"
            )
        if not 0.0 <= self.flow_noise_scale <= 1.0:
            raise ValueError(f"flow_noise_scale must be in 0..1, got {self.flow_noise_scale}")
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if self.backbone != "cnn":
            from embodia.policy.backbones import backbone_folder

            backbone_folder(self.backbone)  # validates the spelling
            if self.keypoints:
                raise ValueError(
                    "keypoints read a middle block of the built-in CNN; set keypoints=0 with a pretrained "
                    f"backbone ({self.backbone})"
                )
        if self.keypoints < 0 or not 1 <= self.keypoint_block <= len(self.cnn_channels):
            raise ValueError(
                f"keypoints must be >= 0 and keypoint_block in 1..{len(self.cnn_channels)}, "
                f"got {self.keypoints} / {self.keypoint_block}"
            )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cnn_channels"] = list(self.cnn_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VLAConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "cnn_channels" in known:
            known["cnn_channels"] = tuple(known["cnn_channels"])
        return cls(**known)


class FiLMBlock(nn.Module):
    """Conv (stride 2) -> GroupNorm -> FiLM from the sentence vector -> GELU."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(8, c_out)
        self.film = nn.Linear(LANG_DIM, 2 * c_out)
        nn.init.zeros_(self.film.weight)  # start as the identity modulation
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        gamma, beta = self.film(sentence).chunk(2, dim=-1)
        return nn.functional.gelu(x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])


def fourier_features(xy: torch.Tensor, bands: int = 6) -> torch.Tensor:
    """(..., 2) coordinates in [-1, 1] -> (..., 2 + 4 * bands): the raw values plus sin/cos at octave
    frequencies, so that a linear layer can tell nearby positions apart."""
    freqs = math.pi * 2.0 ** torch.arange(bands, device=xy.device, dtype=xy.dtype)
    angles = (xy[..., None] * freqs).flatten(-2)
    return torch.cat([xy, angles.sin(), angles.cos()], dim=-1)


class KeypointReadout(nn.Module):
    """Spatial softmax (Levine et al., 2016; the readout of Diffusion Policy's image encoder): each of K
    attention maps over a mid-resolution feature map yields an image point (its expected x, y) and the
    features pooled there. Grid tokens at 1/16 of the image place a block only to within a 16-pixel
    cell; a keypoint is sub-pixel, and under the instruction's FiLM it can follow "the red block", so
    where-to-reach becomes a coordinate the transformer reads directly."""

    def __init__(self, channels: int, k: int, d: int):
        super().__init__()
        self.logits = nn.Conv2d(channels, k, 1)
        self.log_temp = nn.Parameter(torch.zeros(1))  # learned sharpness of the maps
        self.where = nn.Linear(2 + 4 * 6, d)
        self.what = nn.Linear(channels, d)
        self.ident = nn.Parameter(torch.randn(1, k, d) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, h, w) -> tokens (N, K, D)."""
        h, w = x.shape[-2:]
        att = (self.logits(x).flatten(2) * self.log_temp.exp()).softmax(dim=-1)  # (N, K, hw)
        ys = torch.linspace(-1.0, 1.0, h, device=x.device).repeat_interleave(w)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device).repeat(h)
        points = att @ torch.stack([xs, ys], dim=-1)  # (N, K, 2)
        pooled = att @ x.flatten(2).transpose(1, 2)  # (N, K, C)
        return self.where(fourier_features(points)) + self.what(pooled) + self.ident


class VisionEncoder(nn.Module):
    """Shared CNN for every camera; a learned camera embedding tells the cameras apart. Each camera
    gives a grid of tokens from the last block and, optionally, keypoint tokens from a middle block."""

    def __init__(self, cfg: VLAConfig):
        super().__init__()
        chans = (3, *cfg.cnn_channels)
        self.blocks = nn.ModuleList(FiLMBlock(a, b) for a, b in zip(chans[:-1], chans[1:], strict=True))
        self.proj = nn.Linear(chans[-1], cfg.d_model)
        side = cfg.image_size // 2 ** len(cfg.cnn_channels)
        self.n_grid = side * side
        self.keypoint_block = cfg.keypoint_block
        self.keypoints = (
            KeypointReadout(chans[cfg.keypoint_block], cfg.keypoints, cfg.d_model) if cfg.keypoints else None
        )
        self.pos = nn.Parameter(torch.zeros(1, 1, self.n_grid, cfg.d_model))
        self.camera = nn.Parameter(torch.zeros(1, cfg.max_cameras, 1, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.camera, std=0.02)

    def forward(self, images: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """images (B, K, 3, H, W) in [0, 1] -> tokens (B, K, N, D)."""
        b, k = images.shape[:2]
        x = (images.flatten(0, 1) - 0.5) / 0.25
        s = sentence.repeat_interleave(k, dim=0)
        points = None
        for i, block in enumerate(self.blocks):
            x = block(x, s)
            if self.keypoints is not None and i + 1 == self.keypoint_block:
                points = self.keypoints(x)
        tokens = self.proj(x.flatten(2).transpose(1, 2)).view(b, k, self.n_grid, -1) + self.pos
        if points is not None:
            tokens = torch.cat([tokens, points.view(b, k, points.shape[1], -1)], dim=2)
        return tokens + self.camera[:, :k]


FLOW_TIME_MIN = 0.001  # as in pi0, the flow time is kept away from exactly 0 (pure data)


def sample_flow_time(batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The flow-matching training time of each sample: t ~ Beta(1.5, 1) (more weight near the noisy
    end), squeezed into [FLOW_TIME_MIN, 1]. Drawn by inverse CDF (F(x) = x^1.5) from one uniform per
    sample, so that the draw comes from `generator` (the training loop's per-step generator: a batch is
    a pure function of its step); torch's Beta sampler only uses the global generator. On the CPU."""
    u = torch.rand(batch, generator=generator)
    return u.pow(1 / 1.5) * (1 - FLOW_TIME_MIN) + FLOW_TIME_MIN


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of the flow time t in [0, 1]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = 1000.0 * t[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Attention(nn.Module):
    """Multi-head attention on scaled_dot_product_attention. Keys/values are computed by `kv` so that
    the action expert can compute the prefix's once per chunk and reuse them at every flow step."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.kv_proj = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        k, v = self.kv_proj(x).view(b, n, 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, n, d = x.shape
        q = self.q(x).view(b, n, self.heads, -1).transpose(1, 2)
        a = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(a.transpose(1, 2).reshape(b, n, d))


def _mlp(d: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


class EncoderBlock(nn.Module):
    """Pre-norm bidirectional self-attention block (the prefix)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.norm1, self.attn, self.norm2, self.mlp = (
            nn.LayerNorm(d),
            Attention(d, heads),
            nn.LayerNorm(d),
            _mlp(d),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, *self.attn.kv(h), mask)
        return x + self.mlp(self.norm2(x))


class ExpertBlock(nn.Module):
    """Self-attention over the action chunk, then cross-attention to the prefix (K/V given)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(d), Attention(d, heads)
        self.norm2, self.cross_attn = nn.LayerNorm(d), Attention(d, heads)
        self.norm3, self.mlp = nn.LayerNorm(d), _mlp(d)

    def forward(
        self, x: torch.Tensor, memory_kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, *self.self_attn.kv(h), None)
        x = x + self.cross_attn(self.norm2(x), *memory_kv, mask)
        return x + self.mlp(self.norm3(x))


@dataclass
class Prefix:
    """Everything the action expert needs from the observation, computed once per chunk."""

    memory: torch.Tensor  # (B, N, D)
    valid: torch.Tensor  # (B, N) bool
    cross_kv: list[tuple[torch.Tensor, torch.Tensor]]  # per expert layer
    attn_mask: torch.Tensor  # (B, 1, 1, N) bool, True where attention is allowed

    def __post_init__(self) -> None:
        memory, valid, mask = (tuple(x.shape) for x in (self.memory, self.valid, self.attn_mask))
        if len(valid) != 2 or len(memory) != 3 or memory[:2] != valid or mask != (valid[0], 1, 1, valid[1]):
            raise ValueError(
                f"Prefix fields disagree: memory {memory}, valid {valid}, attn_mask {mask} "
                "(want (B, N, D), (B, N) and (B, 1, 1, N))"
            )


class VLA(nn.Module):
    def __init__(self, cfg: VLAConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        if cfg.backbone == "cnn":
            self.vision: nn.Module = VisionEncoder(cfg)
        else:
            from embodia.policy.backbones import PretrainedVision

            self.vision = PretrainedVision(cfg)
        self.lang_proj = nn.Linear(LANG_DIM, d)
        self.state_proj = nn.Linear(cfg.max_state_dim, d)
        self.embodiment = nn.Embedding(cfg.num_embodiments, d)
        # Hand-written blocks rather than nn.Transformer*: on a CPU at these sizes per-op overhead
        # dominates, and the expert reuses the prefix's cross-attention K/V at every flow step.
        self.prefix = nn.ModuleList(EncoderBlock(d, cfg.n_heads) for _ in range(cfg.prefix_layers))
        self.prefix_norm = nn.LayerNorm(d)
        self.expert = nn.ModuleList(ExpertBlock(d, cfg.n_heads) for _ in range(cfg.expert_layers))
        self.expert_norm = nn.LayerNorm(d)
        self.action_in = nn.Linear(cfg.max_action_dim, d)
        self.action_pos = nn.Parameter(torch.randn(1, cfg.chunk_size, d) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.action_out = nn.Linear(d, cfg.max_action_dim)

    # ------------------------------------------------------------------ prefix (once per chunk)
    def encode_prefix(
        self,
        images: torch.Tensor,  # (B, K, 3, H, W) float in [0, 1]
        image_mask: torch.Tensor,  # (B, K) bool
        lang_tokens: torch.Tensor,  # (B, T, 384)
        lang_mask: torch.Tensor,  # (B, T) bool
        sentence: torch.Tensor,  # (B, 384)
        state: torch.Tensor,  # (B, max_state_dim) normalised, zero-padded
        embodiment: torch.Tensor,  # (B,) long
    ) -> Prefix:
        b = images.shape[0]
        vis = self.vision(images, sentence)  # (B, K, N, D)
        vis_mask = image_mask[:, :, None].expand(-1, -1, vis.shape[2]).reshape(b, -1)
        tokens = torch.cat(
            [
                vis.flatten(1, 2),
                self.lang_proj(lang_tokens),
                self.state_proj(state)[:, None],
                self.embodiment(embodiment)[:, None],
            ],
            dim=1,
        )
        valid = torch.cat(
            [vis_mask, lang_mask, torch.ones(b, 2, dtype=torch.bool, device=tokens.device)], dim=1
        )
        mask = valid[:, None, None, :]
        x = tokens
        for block in self.prefix:
            x = block(x, mask)
        memory = self.prefix_norm(x)
        cross_kv = [block.cross_attn.kv(memory) for block in self.expert]
        return Prefix(memory, valid, cross_kv, mask)

    # ------------------------------------------------------------------ action expert
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, prefix: Prefix) -> torch.Tensor:
        h = (
            self.action_in(x_t)
            + self.action_pos
            + self.time_mlp(time_embedding(t, self.cfg.d_model))[:, None]
        )
        for block, kv in zip(self.expert, prefix.cross_kv, strict=True):
            h = block(h, kv, prefix.attn_mask)
        return self.action_out(self.expert_norm(h))

    def head_input(self, actions: torch.Tensor, loss_mask: torch.Tensor, noise: torch.Tensor | None = None,
                   t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        """(input, time, target) of the action head for one training batch: the noisy chunk x_t, its flow
        time and the velocity target noise - actions (flow), or zeros, time 0 and the actions (l1)."""
        b = actions.shape[0]
        if self.cfg.head == "l1":
            return torch.zeros_like(actions), torch.zeros(b, device=actions.device), actions
        noise = torch.randn_like(actions) if noise is None else noise
        if t is None:
            t = sample_flow_time(b).to(actions.device)
        tt = t[:, None, None]
        # Padded action dims carry nothing: zero them in the input too, not only in the loss.
        dims = loss_mask.any(dim=1, keepdim=True)
        return (tt * noise + (1 - tt) * actions) * dims, t, noise - actions

    def loss(self, prefix: Prefix, actions: torch.Tensor, loss_mask: torch.Tensor,
             noise: torch.Tensor | None = None, t: torch.Tensor | None = None,
             target: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """actions (B, H, max_action_dim) normalised and padded; loss_mask (B, H, max_action_dim) is
        False on padded dims and padded chunk steps. `target` replaces the head's own target (a
        teacher's output on the same input: distillation)."""
        x, t, own = self.head_input(actions, loss_mask, noise, t)
        pred = self.velocity(x, t, prefix)
        target = own if target is None else target
        err = (pred - target).abs() if self.cfg.head == "l1" else (pred - target) ** 2
        m = loss_mask.float()
        return (err * m).sum() / m.sum().clamp(min=1)

    @torch.no_grad()
    def head_output(self, inputs: dict[str, torch.Tensor], actions: torch.Tensor, loss_mask: torch.Tensor,
                    noise: torch.Tensor | None = None, t: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """What this model's head outputs on a training batch's input (the same x_t and time `loss`
        builds from `noise` and `t`): a teacher's target for distillation."""
        x, t, _ = self.head_input(actions, loss_mask, noise, t)
        return self.velocity(x, t, self.encode_prefix(**inputs))

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        actions: torch.Tensor,
        loss_mask: torch.Tensor,
        noise: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training loss for one batch. Training calls the module itself (not `loss`) so that a
        DistributedDataParallel wrapper sees the call and synchronises the gradients."""
        return self.loss(self.encode_prefix(**inputs), actions, loss_mask, noise=noise, t=t, target=target)

    @torch.no_grad()
    def sample(self, prefix: Prefix, dim_mask: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, steps: int | None = None,
               guide: Guide | None = None) -> torch.Tensor:  # fmt: skip
        """A normalised action chunk (B, H, max_action_dim): Euler from t = 1 (noise) to t = 0.
        `dim_mask` (B, max_action_dim) marks the embodiment's real action dims (default: all);
        `guide` inpaints known actions (real-time chunking)."""
        memory = prefix.memory
        b = memory.shape[0]
        shape = (b, self.cfg.chunk_size, self.cfg.max_action_dim)
        keep = (
            torch.ones(b, 1, shape[2], device=memory.device)
            if dim_mask is None
            else dim_mask[:, None].float()
        )
        return integrate(
            lambda x, t: self.velocity(x, t, prefix),
            self.cfg,
            shape,
            keep,
            noise,
            steps,
            guide,
            memory.device,
        )


@dataclass
class Guide:
    """Known actions to inpaint into the new chunk (real-time chunking): position i is pulled toward
    `actions[:, i]` with weight `weights[:, i]` (1 = exactly these actions, 0 = free)."""

    actions: torch.Tensor  # (B, H, max_action_dim), normalised and padded
    weights: torch.Tensor  # (B, H, 1) in [0, 1]


def integrate(velocity, cfg: VLAConfig, shape, keep, noise=None, steps=None, guide=None, device=None):
    """Euler integration of the flow from t = 1 to 0 (or one pass of the L1 head), with optional
    inpainting by replacement: after every step the guided positions are blended toward where the known
    actions would be at that flow time (t * noise + (1 - t) * actions), so at t = 0 they equal the known
    actions where the weight is 1 and the model fills in a smooth continuation around them."""
    b = shape[0]
    if cfg.head == "l1":
        x = velocity(torch.zeros(shape, device=device), torch.zeros(b, device=device)) * keep
        return x if guide is None else x + guide.weights * (guide.actions - x)
    # `noise` is standard normal (drawn here, or given: seeded per row by the caller); the sampler's
    # temperature scales it either way.
    noise = torch.randn(shape, device=device) if noise is None else noise
    noise = noise * cfg.flow_noise_scale * keep
    x = noise
    n = steps or cfg.flow_steps
    dt = 1.0 / n
    for i in range(n):
        t = torch.full((b,), 1.0 - i * dt, device=device)
        x = (x - dt * velocity(x, t)) * keep
        if guide is not None:
            t_next = 1.0 - (i + 1) * dt
            target = (t_next * noise + (1.0 - t_next) * guide.actions) * keep
            x = x + guide.weights * (target - x)
    return x
