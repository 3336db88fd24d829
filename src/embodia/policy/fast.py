"""Low-latency inference for a fixed set of weights: TorchScript traces of the prefix encoder and of
one flow step, frozen (weights folded in as constants) and cached per input shape.

Why: at batch 1 on a CPU, the action expert's cost is almost all per-operator dispatch overhead (a
128-wide block is ~30 small ops), paid again at every flow step. A frozen trace runs the same
operators without the Python and dispatcher round trips: measured 3.2 -> 1.8 ms per flow step for the
base architecture on the 2-core CPU. The math is the same operators in the same order, so outputs
match eager mode (tested).

Traces are specialised to the shapes they saw (batch size, number of language tokens), so they are
cached by shape, with the language padded to a multiple of LANG_BUCKET tokens (masked out: the same
chunk, to float rounding); a new shape costs one trace (~0.3 s) the first time. The traces
hold a frozen copy of the weights: build a new `FastSampler` after changing the model's weights.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import nn

from embodia.policy.model import VLA, Guide, Prefix, integrate

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


class _PrefixFn(nn.Module):
    def __init__(self, model: VLA):
        super().__init__()
        self.model = model

    def forward(self, images, image_mask, lang_tokens, lang_mask, sentence, state, embodiment):
        p = self.model.encode_prefix(images, image_mask, lang_tokens, lang_mask, sentence, state, embodiment)
        flat = [t for kv in p.cross_kv for t in kv]
        return (p.memory, p.valid, p.attn_mask, *flat)


class _StepFn(nn.Module):
    """One flow step on the prefix `_PrefixFn` returned, rebuilt field by field (the expert reads only
    the cross-attention K/V and the mask; memory and valid are handed on all the same, so that the
    `Prefix` it sees is the one `encode_prefix` built)."""

    def __init__(self, model: VLA):
        super().__init__()
        self.model = model

    def forward(self, x, t, memory, valid, attn_mask, *kv):
        cross = [(kv[i], kv[i + 1]) for i in range(0, len(kv), 2)]
        return self.model.velocity(x, t, Prefix(memory, valid, cross, attn_mask))


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
    """`sample(inputs, dim_mask, noise, steps)`: the same chunk as `model.sample(model.encode_prefix(**inputs))`."""

    def __init__(self, model: VLA):
        self.model = model.eval()
        self.cfg = model.cfg
        self._prefix: OrderedDict[tuple, nn.Module] = OrderedDict()
        self._step: OrderedDict[tuple, nn.Module] = OrderedDict()

    def _cached(self, cache: OrderedDict, key: tuple, make) -> nn.Module:
        fn = cache.get(key)
        if fn is None:
            fn = cache[key] = make()
            if len(cache) > MAX_TRACES:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return fn

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
        key = tuple(tuple(a.shape) for a in args)
        prefix_fn = self._cached(self._prefix, key, lambda: _freeze(_PrefixFn(self.model), args))
        memory, valid, attn_mask, *kv = prefix_fn(*args)
        cfg = self.cfg
        b = args[0].shape[0]
        shape = (b, cfg.chunk_size, cfg.max_action_dim)
        keep = torch.ones(b, 1, shape[2]) if dim_mask is None else dim_mask[:, None].float()
        step_fn = None

        def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            nonlocal step_fn
            if step_fn is None:
                step_fn = self._step_fn(key, x, t, (memory, valid, attn_mask, *kv))
            return step_fn(x, t, memory, valid, attn_mask, *kv)

        return integrate(velocity, cfg, shape, keep, noise, steps, guide)

    def _step_fn(self, key, x, t, prefix: tuple) -> nn.Module:
        return self._cached(self._step, key, lambda: _freeze(_StepFn(self.model), (x, t, *prefix)))
