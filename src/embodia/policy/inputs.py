"""Small transforms from dataset/environment values to the VLA's tensors, shared by training, the
`Policy` wrapper and the server so that every consumer prepares inputs the same way.

Each embodiment of a checkpoint is described by an `EmbodimentInfo`: its dimensions, its cameras in
slot order and its normalisation stats. Cameras are slotted by position (slot 0 = the first camera of
the embodiment), missing slots are zero images with `image_mask` False.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from embodia.policy.normalize import Normalizer, pad_to


@dataclass
class EmbodimentInfo:
    name: str
    token: int  # row of the model's embodiment table
    state_dim: int
    action_dim: int
    cameras: list[str]  # observation keys, in slot order
    fps: float
    normalizer: Normalizer
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    image_shapes: dict[str, list[int]] = field(default_factory=dict)  # (H, W, C) the data had
    # Action dims the model predicts relative to the current state (joint targets minus the joint
    # positions at the chunk's first frame), as openpi does for joint-space robots: the model then
    # learns small corrections around where the arm is instead of absolute angles. Empty = absolute.
    delta_dims: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON metadata (the normaliser is stored separately in normalization.json)."""
        return {
            "name": self.name,
            "token": self.token,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "cameras": list(self.cameras),
            "fps": self.fps,
            "state_names": list(self.state_names),
            "action_names": list(self.action_names),
            "image_shapes": {k: list(v) for k, v in self.image_shapes.items()},
            "delta_dims": list(self.delta_dims),
        }

    @classmethod
    def from_dict(cls, d: dict, normalizer: Normalizer) -> EmbodimentInfo:
        return cls(
            name=d["name"],
            token=int(d["token"]),
            state_dim=int(d["state_dim"]),
            action_dim=int(d["action_dim"]),
            cameras=list(d["cameras"]),
            fps=float(d["fps"]),
            normalizer=normalizer,
            state_names=list(d.get("state_names", [])),
            action_names=list(d.get("action_names", [])),
            image_shapes={k: list(v) for k, v in d.get("image_shapes", {}).items()},
            delta_dims=[int(i) for i in d.get("delta_dims", [])],
        )


def to_model_image(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) uint8 or float in [0, 1] -> float (B, 3, size, size) in [0, 1].

    The image is resized (bilinear, antialiased) so that its longer side is `size`, then a non-square
    result is zero-padded to a square (letterbox), so the aspect ratio, and with it the geometry the
    policy learned, is kept. Resizing comes first, so the work and memory are those of the input and
    the output, never of a square as large as the input's longer side; a uint8 image is resized as
    uint8 (torch's vectorised kernel: a 1920 x 1920 frame in ~2 ms, 20x faster than in float32).
    """
    fitted = _fit(x, size)
    return fitted.float().div_(255.0) if fitted.dtype == torch.uint8 else fitted


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (longer side to `size`) and letterbox, in x's own dtype."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    if (nh, nw) != (h, w):
        if x.dtype == torch.uint8:
            x = x.contiguous(memory_format=torch.channels_last)  # the uint8 kernel's layout
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True)
    if (nh, nw) != (size, size):
        top, left = (size - nh) // 2, (size - nw) // 2
        x = torch.nn.functional.pad(x, (left, size - nw - left, top, size - nh - top))
    return x


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """One (H, W, 3) uint8 image -> (size, size, 3) uint8, resized and letterboxed exactly as
    `to_model_image` does it (which then leaves it as it is). The server calls this before it queues a
    request, so the cost of a large image is paid outside the inference lock."""
    if not image.flags.writeable or not image.flags.c_contiguous:  # e.g. a view of a decoded message
        image = np.array(image, order="C")  # (torch wants its arrays writable)
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    return np.ascontiguousarray(_fit(x, size)[0].permute(1, 2, 0).numpy())


def stack_cameras(
    images: list[torch.Tensor], size: int, max_cameras: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-camera (B, 3, H, W) images -> (B, max_cameras, 3, size, size) and the (B, max_cameras) mask."""
    if len(images) > max_cameras:
        raise ValueError(f"{len(images)} cameras given; the model takes at most {max_cameras}")
    b = images[0].shape[0]
    out = torch.zeros(b, max_cameras, 3, size, size, device=images[0].device)
    mask = torch.zeros(b, max_cameras, dtype=torch.bool, device=images[0].device)
    for slot, img in enumerate(images):
        out[:, slot] = to_model_image(img, size)
        mask[:, slot] = True
    return out, mask


@dataclass
class LanguageTable:
    """Encodings of a fixed set of instructions (a dataset's tasks), trimmed to the longest one so that
    attention does not run over padding."""

    tokens: torch.Tensor  # (N, T, 384)
    mask: torch.Tensor  # (N, T)
    pooled: torch.Tensor  # (N, 384)
    index: dict[str, int]

    @classmethod
    def build(cls, encoder, texts: list[str]) -> LanguageTable:
        texts = list(dict.fromkeys(texts))
        tokens, mask, pooled = encoder.encode(texts)
        t = max(1, int(mask.sum(1).max()))
        return cls(
            tokens[:, :t].contiguous(), mask[:, :t].contiguous(), pooled, {s: i for i, s in enumerate(texts)}
        )

    def lookup(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        try:
            rows = torch.tensor([self.index[s] for s in texts])
        except KeyError as exc:
            raise KeyError(f"instruction {exc} was not encoded") from None
        return self.tokens[rows], self.mask[rows], self.pooled[rows]


def encode_instructions(encoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode with the (caching) encoder and trim padding shared by the whole batch."""
    tokens, mask, pooled = encoder.encode(list(texts))
    t = max(1, int(mask.sum(1).max()))
    return tokens[:, :t], mask[:, :t], pooled


def model_inputs(
    info: EmbodimentInfo,
    images: list[torch.Tensor],
    state: torch.Tensor,
    language: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    image_size: int,
    max_cameras: int,
    max_state_dim: int,
) -> dict[str, torch.Tensor]:
    """The keyword arguments of `VLA.encode_prefix` for one embodiment's batch (raw state)."""
    imgs, image_mask = stack_cameras(images, image_size, max_cameras)
    state_n = info.normalizer.normalize_state(state.float())
    state_p, _ = pad_to(state_n, max_state_dim)
    tokens, lang_mask, pooled = language
    b = state.shape[0]
    return {
        "images": imgs,
        "image_mask": image_mask,
        "lang_tokens": tokens.to(imgs.device),
        "lang_mask": lang_mask.to(imgs.device),
        "sentence": pooled.to(imgs.device),
        "state": state_p,
        "embodiment": torch.full((b,), info.token, dtype=torch.long, device=imgs.device),
    }


def to_delta(info: EmbodimentInfo, actions: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """Raw (B, H, d) actions -> the representation the model predicts (delta dims minus the state)."""
    if not info.delta_dims:
        return actions
    out = actions.clone()
    dims = info.delta_dims
    out[..., dims] = actions[..., dims] - state[:, None, dims].to(actions.dtype)
    return out


def delta_dims_for(state_names: list[str], action_names: list[str]) -> list[int]:
    """Joint dims whose action is a target for the same-named state (not the gripper, whose command is
    a discrete open/close that reads better as an absolute value)."""
    return [
        i
        for i, (a, s) in enumerate(zip(action_names, state_names, strict=False))
        if a == s and "gripper" not in a.lower()
    ]


def action_targets(
    info: EmbodimentInfo,
    actions: torch.Tensor,
    is_pad: torch.Tensor,
    max_action_dim: int,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (B, H, d) actions -> normalised, padded (B, H, max_action_dim) and the loss mask (False on
    padded dimensions and on chunk steps past the episode's end)."""
    if info.delta_dims:
        if state is None:
            raise ValueError(f"embodiment {info.name!r} predicts delta actions: the state is needed")
        actions = to_delta(info, actions.float(), state.float())
    a, dim_mask = pad_to(info.normalizer.normalize_action(actions.float()), max_action_dim)
    loss_mask = dim_mask & ~is_pad[..., None]
    return a, loss_mask


def action_dim_mask(info: EmbodimentInfo, batch: int, max_action_dim: int) -> torch.Tensor:
    mask = torch.zeros(batch, max_action_dim, dtype=torch.bool)
    mask[:, : info.action_dim] = True
    return mask


def to_numpy_actions(
    info: EmbodimentInfo, normalized: torch.Tensor, state: torch.Tensor | None = None
) -> np.ndarray:
    """Model output (B, H, max_action_dim) -> raw actions (B, H, action_dim) float32."""
    a = info.normalizer.unnormalize_action(normalized[..., : info.action_dim].double())
    if info.delta_dims:
        if state is None:
            raise ValueError(f"embodiment {info.name!r} predicts delta actions: the state is needed")
        dims = info.delta_dims
        a[..., dims] = a[..., dims] + state[:, None, dims].double()
    return a.float().cpu().numpy()
