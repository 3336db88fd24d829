"""Low-latency inference for a fixed set of weights: a TorchScript trace of the whole chunk (the prefix
encoder and every flow step), frozen (weights folded in as constants) and cached per input shape.

Why: at batch 1 on a CPU, the action expert's cost is almost all per-operator dispatch overhead (a
128-wide block is ~30 small ops), paid again at every flow step. A frozen trace runs the same
operators without the Python and dispatcher round trips: measured 3.2 -> 1.8 ms per flow step for the
base architecture on the 2-core CPU. The math is the same operators in the same order, so outputs
match eager mode (tested). One trace for the whole chunk (rather than one for the prefix and one per
flow step) also means one call for the model, so the acting thread hands the interpreter lock over
fewer times per chunk (each torch call from Python hands it over): beside a Python thread that never
blocks (a server's busy event loop), a chunk of the base took 153 ms instead of 804 ms at Python's 5 ms
switch interval, and 28 instead of 43 ms at the server's 0.05 ms (`python
benchmarks/inference_latency.py --threads 1 --beside-busy-thread --switch-interval S`), with
bit-identical actions.

Traces are specialised to the shapes they saw (batch size, number of language tokens), so they are
cached by shape, with the language padded to a multiple of LANG_BUCKET tokens (masked out: the same
chunk, to float rounding); a new shape, number of steps or guidance costs one trace (~0.3 s) the
first time. The traces hold a frozen copy of the weights: build a new `FastSampler` after changing
the model's weights.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import nn

from embodia.policy.model import VLA, Guide, integrate

PREFIX_ARGS = ("images", "image_mask", "lang_tokens", "lang_mask", "sentence", "state", "embodiment")
MAX_TRACES = 8
# Language tokens are padded (masked out) to a multiple of this, so instructions of every length share
# four traces per batch size (8, 16, 24, 32 tokens) instead of needing one each: with one per length,
# a server fed varied prompts re-traced (~0.3 s under the inference lock, ~10 MB) on almost every
# request once more than MAX_TRACES lengths were in use.
LANG_BUCKET = 8


def _pad_language(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    tokens, mask = inputs["lang_tokens"], inputs["lang_mask"]
    extra = -tokens.shape[1] % LANG_BUCKET
    if not extra:
        return inputs
    return {
        **inputs,
        "lang_tokens": torch.nn.functional.pad(tokens, (0, 0, 0, extra)),
        "lang_mask": torch.nn.functional.pad(mask, (0, extra), value=False),
    }


class _ChunkFn(nn.Module):
    """The whole chunk, prefix and every flow step, as one module: traced, it is one call, so the
    acting thread gives up the interpreter lock once per chunk for the model rather than once per
    operator (in a server, every hand-back waits while the event loop runs Python)."""

    def __init__(self, model: VLA, steps: int | None, guided: bool):
        super().__init__()
        self.model, self.steps, self.guided = model, steps, guided

    def forward(self, images, image_mask, lang_tokens, lang_mask, sentence, state, embodiment, noise,
                keep, *guide):  # fmt: skip
        prefix = self.model.encode_prefix(images, image_mask, lang_tokens, lang_mask, sentence, state,
                                          embodiment)  # fmt: skip
        return integrate(
            lambda x, t: self.model.velocity(x, t, prefix),
            self.model.cfg,
            tuple(noise.shape),
            keep,
            noise,
            self.steps,
            Guide(*guide) if self.guided else None,
        )


def _freeze(module: nn.Module, args: tuple) -> nn.Module:
    # The tracer warns about shapes turned into constants: intended, traces are cached per shape.
    # TorchScript is deprecated in favour of torch.compile, which on a CPU needs a C++ toolchain and
    # tens of seconds of compilation on the first call: too slow for `embodia demo`. If a future torch
    # drops tracing, fall back to the eager module (same results, slower).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            traced = torch.jit.trace(module.eval(), args, check_trace=False)
            return torch.jit.freeze(traced)
        except (AttributeError, RuntimeError, NotImplementedError) as exc:
            warnings.warn(f"tracing unavailable ({exc}); running the eager model", stacklevel=3)
            return module.eval()


class FastSampler:
    """`sample(inputs, dim_mask, noise, steps, guide)`: the same chunk as
    `model.sample(model.encode_prefix(**inputs), ...)`, from one frozen trace per input shape."""

    def __init__(self, model: VLA):
        self.model = model.eval()
        self.cfg = model.cfg
        self._chunk: OrderedDict[tuple, nn.Module] = OrderedDict()

    @torch.inference_mode()
    def sample(
        self,
        inputs: dict[str, torch.Tensor],
        dim_mask: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        steps: int | None = None,
        guide: Guide | None = None,
    ) -> torch.Tensor:
        args = tuple(_pad_language(inputs)[k] for k in PREFIX_ARGS)
        cfg, b = self.cfg, args[0].shape[0]
        shape = (b, cfg.chunk_size, cfg.max_action_dim)
        keep = torch.ones(b, 1, shape[2]) if dim_mask is None else dim_mask[:, None].float()
        noise = torch.randn(shape) if noise is None else noise
        extra = () if guide is None else (guide.actions, guide.weights)
        args = (*args, noise, keep, *extra)
        key = (tuple(tuple(a.shape) for a in args), steps, guide is not None)
        fn = self._chunk.get(key)
        if fn is None:
            fn = self._chunk[key] = _freeze(_ChunkFn(self.model, steps, guide is not None), args)
            if len(self._chunk) > MAX_TRACES:
                self._chunk.popitem(last=False)
        else:
            self._chunk.move_to_end(key)
        return fn(*args)
