"""Batch transforms (embodia.data.transforms): what each does, their composition, their configuration."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from embodia.data.transforms import (
    INSTRUCTION,
    LANG_MASK,
    LANG_TOKENS,
    LOSS_MASK,
    MODEL_INPUTS,
    SENTENCE,
    TARGETS,
    Compose,
    EncodeInstructions,
    ImageAugment,
    Paraphrase,
    SentenceMix,
    SentenceNoise,
    ToModelInputs,
    WordDropout,
    drop_words,
    mix_sentences,
    perturb_sentences,
    swap_phrasings,
)
from embodia.policy.inputs import EmbodimentInfo, LanguageTable
from embodia.policy.model import VLAConfig
from embodia.policy.normalize import Normalizer

CAMS = ("observation.images.front", "observation.images.wrist")
TASKS = ["pick up the red block", "push the blue block to the left"]
ALTS = {
    TASKS[0]: ["lift the red block", "grab the red block"],
    TASKS[1]: ["shove the blue block left"],
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class FakeEncoder:
    """Stands in for MiniLM: a text's token states and unit sentence vector from its hash; as many real
    tokens as the text has words, plus [CLS] and [SEP]."""

    def encode(self, texts):
        t = 2 + max(len(s.split()) for s in texts)
        mask = torch.arange(t)[None, :] < torch.tensor([2 + len(s.split()) for s in texts])[:, None]
        g = [torch.Generator().manual_seed(zlib.crc32(s.encode())) for s in texts]
        tokens = torch.stack([torch.randn(t, 384, generator=gi) for gi in g])
        pooled = torch.nn.functional.normalize(
            torch.stack([torch.randn(384, generator=gi) for gi in g]), dim=-1
        )
        return tokens, mask, pooled


def table(texts=None) -> LanguageTable:
    texts = texts or TASKS + [a for alts in ALTS.values() for a in alts]
    return LanguageTable.build(FakeEncoder(), texts)


def batch(b: int = 6) -> dict:
    g = gen(7)
    out = {c: torch.randint(0, 256, (b, 3, 16, 20), dtype=torch.uint8, generator=g) for c in CAMS}
    out["observation.state"] = torch.randn(b, 6, generator=g)
    out["action"] = torch.randn(b, 4, 6, generator=g)
    out["action_is_pad"] = torch.zeros(b, 4, dtype=torch.bool)
    out["action_is_pad"][0, 2:] = True
    out["task"] = [TASKS[i % 2] for i in range(b)]
    return out


def info(cameras=CAMS, state_dim=6, action_dim=6) -> EmbodimentInfo:
    stats = {
        "action": {"q01": np.full(action_dim, -2.0), "q99": np.full(action_dim, 2.0)},
        "observation.state": {"mean": np.full(state_dim, 1.0), "std": np.full(state_dim, 0.5)},
    }
    return EmbodimentInfo(
        "so101", 0, state_dim, action_dim, list(cameras), 30.0, Normalizer.from_stats(stats)
    )


MODEL = VLAConfig(image_size=32, chunk_size=4, n_action_steps=2, d_model=32, n_heads=2, cnn_channels=(8, 16),
                  max_state_dim=8, max_action_dim=8)  # fmt: skip


# ------------------------------------------------------------------------------------------ composition
def test_compose_runs_the_steps_in_order_with_one_generator():
    seen = []

    def step(name):
        def run(b, g):
            seen.append((name, g))
            return {**b, "trail": b.get("trail", "") + name}

        return run

    g = gen()
    out = Compose([step("a"), step("b"), step("c")])({"x": 1}, g)
    assert out == {"x": 1, "trail": "abc"} and [s[0] for s in seen] == ["a", "b", "c"]
    assert all(s[1] is g for s in seen)
    assert Compose(())({"x": 1}, g) == {"x": 1}
    with pytest.raises(TypeError, match="Compose takes transforms"):
        Compose([step("a"), 3])


def test_a_whole_pipeline_is_a_pure_function_of_its_generator_and_leaves_its_input_alone():
    lang = table()
    pipeline = Compose([ImageAugment(CAMS), Paraphrase(ALTS, 0.5), EncodeInstructions(lang), WordDropout(0.2),
                        SentenceMix(ALTS, lang, 0.5), SentenceNoise(0.3), ToModelInputs(info(), MODEL)])  # fmt: skip
    raw = batch()
    before = {k: (v.clone() if torch.is_tensor(v) else list(v)) for k, v in raw.items()}
    a, b, c = pipeline(raw, gen(1)), pipeline(raw, gen(1)), pipeline(raw, gen(2))
    for key in MODEL_INPUTS, TARGETS, LOSS_MASK:
        x, y = a[key], b[key]
        if isinstance(x, dict):
            assert all(torch.equal(x[k], y[k]) for k in x)
        else:
            assert torch.equal(x, y)
    assert not torch.equal(a[MODEL_INPUTS]["images"], c[MODEL_INPUTS]["images"])
    for key, value in before.items():  # the input batch is never modified in place
        assert torch.equal(raw[key], value) if torch.is_tensor(value) else raw[key] == value


# ------------------------------------------------------------------------------------------ images
def test_image_augment_shifts_and_jitters_only_the_images():
    raw = batch(16)
    a = ImageAugment(CAMS)(raw, gen(0))
    b, c = ImageAugment(CAMS)(raw, gen(0)), ImageAugment(CAMS)(raw, gen(1))
    for key in CAMS:
        assert a[key].dtype == torch.float32 and a[key].shape == (16, 3, 16, 20)
        assert a[key].min() >= 0.0 and a[key].max() <= 1.0
        assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])
        assert not torch.equal(a[key], raw[key].float() / 255)
    assert a["action"] is raw["action"] and a["task"] is raw["task"]
    # No jitter: each image is the original, shifted by at most the 1-pixel minimum pad.
    still = ImageAugment(CAMS[:1], max_shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0)(raw, gen(0))
    assert still[CAMS[1]] is raw[CAMS[1]]  # cameras not named are left alone
    padded = torch.nn.functional.pad(raw[CAMS[0]], (1, 1, 1, 1), mode="replicate")
    for img, pad in zip((still[CAMS[0]] * 255).round().to(torch.uint8), padded, strict=True):
        crops = [pad[:, dy : dy + 16, dx : dx + 20] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(img, crop) for crop in crops)


def test_image_augment_config_is_checked():
    with pytest.raises(ValueError, match="cameras"):
        ImageAugment(())
    with pytest.raises(ValueError, match="max_shift"):
        ImageAugment(CAMS, max_shift=1.5)
    with pytest.raises(ValueError, match="brightness"):
        ImageAugment(CAMS, brightness=1.0)  # a factor of 0 would black the image out
    with pytest.raises(ValueError, match="saturation"):
        ImageAugment(CAMS, saturation=-0.1)
    with pytest.raises(KeyError, match="observation.images.top"):
        ImageAugment(["observation.images.top"])(batch(), gen())


# ------------------------------------------------------------------------------------------ language
def test_swap_phrasings_draws_other_phrasings_of_the_same_task_at_the_given_rate():
    text = TASKS[0]
    texts = [text] * 4000 + ["Push the puck to a goal"] * 10
    out = swap_phrasings(texts, ALTS, 0.5, gen(1))
    swapped = [o for o in out[:4000] if o != text]
    assert len(swapped) / 4000 == pytest.approx(0.5, abs=0.03)
    assert set(swapped) == set(ALTS[text])  # every phrasing is used, and only those
    assert out[4000:] == texts[4000:]  # no alternatives: unchanged
    assert swap_phrasings(texts, ALTS, 0.5, gen(1)) == out  # a pure function of the generator
    assert swap_phrasings(texts, ALTS, 0.0, gen(1)) == texts


def test_paraphrase_writes_the_instruction_and_keeps_the_task():
    raw = batch(400)
    out = Paraphrase(ALTS, 1.0)(raw, gen())
    assert out["task"] == raw["task"] and INSTRUCTION not in raw
    assert all(i in ALTS[t] for i, t in zip(out[INSTRUCTION], out["task"], strict=True))
    # Rate 0, or nothing to swap in: the batch as it was, and not a draw taken from the generator.
    g = gen()
    state = g.get_state()
    assert Paraphrase(ALTS, 0.0)(raw, g) is raw and Paraphrase({}, 0.5)(raw, g) is raw
    assert torch.equal(g.get_state(), state)
    # Tasks without phrasings are dropped from its table.
    assert Paraphrase({TASKS[0]: [], TASKS[1]: ("x",)}, 0.5).alternatives == {TASKS[1]: ("x",)}


def test_paraphrase_config_is_checked():
    with pytest.raises(ValueError, match=r"Paraphrase.p is a probability"):
        Paraphrase(ALTS, 1.5)
    with pytest.raises(TypeError, match="list of strings"):
        Paraphrase({TASKS[0]: "lift the red block"}, 0.5)  # a bare string, not a list of phrasings
    with pytest.raises(TypeError, match="maps a task"):
        Paraphrase(["lift the red block"], 0.5)


def test_encode_instructions_looks_up_what_the_model_is_shown():
    lang = table()
    raw = batch(4)
    plain = EncodeInstructions(lang)(raw, gen())
    tokens, mask, pooled = lang.lookup(raw["task"])
    assert torch.equal(plain[LANG_TOKENS], tokens) and torch.equal(plain[LANG_MASK], mask)
    assert torch.equal(plain[SENTENCE], pooled)
    shown = EncodeInstructions(lang)({**raw, INSTRUCTION: [ALTS[TASKS[0]][0]] * 4}, gen())
    assert torch.equal(shown[SENTENCE], lang.lookup([ALTS[TASKS[0]][0]] * 4)[2])
    with pytest.raises(KeyError, match="was not encoded"):
        EncodeInstructions(table(TASKS))({**raw, INSTRUCTION: ["hoist the red cube"] * 4}, gen())


def test_word_dropout_hides_only_word_tokens_at_the_given_rate():
    lengths = torch.tensor([2, 5, 12] * 2000)  # real tokens per instruction ([CLS] ... [SEP])
    mask = torch.arange(16)[None, :] < lengths[:, None]
    out = drop_words(mask, 0.25, gen(3))
    assert not (out & ~mask).any()  # padding never becomes real
    assert out[:, 0].all() and out[torch.arange(len(lengths)), lengths - 1].all()  # [CLS], [SEP] kept
    assert torch.equal(out[lengths == 2], mask[lengths == 2])  # nothing between them: nothing to drop
    words = mask.sum() - 2 * len(lengths)
    assert (mask.sum() - out.sum()).item() / words.item() == pytest.approx(0.25, abs=0.02)
    assert torch.equal(out, drop_words(mask, 0.25, gen(3)))  # a pure function of the generator
    step = WordDropout(0.25)({LANG_MASK: mask, SENTENCE: torch.ones(1)}, gen(3))
    assert torch.equal(step[LANG_MASK], out) and torch.equal(step[SENTENCE], torch.ones(1))


def test_word_dropout_config_and_order_are_checked():
    with pytest.raises(ValueError, match=r"WordDropout.p is a probability in \[0, 1\)"):
        WordDropout(1.0)
    with pytest.raises(KeyError, match="put EncodeInstructions before it"):
        WordDropout(0.1)(batch(), gen())


def test_sentence_mix_and_noise_move_the_vector_as_specified():
    g0 = gen(0)
    a = torch.nn.functional.normalize(torch.randn(4000, 384, generator=g0), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(4000, 384, generator=g0), dim=-1)
    mixed = mix_sentences(a, b, 0.5, gen(2))
    assert torch.allclose(mixed.norm(dim=-1), torch.ones(4000))
    moved = ~torch.isclose((mixed * a).sum(-1), torch.ones(4000))
    assert moved.float().mean().item() == pytest.approx(0.5, abs=0.03)
    # every moved vector lies on the arc between its own phrasing and the other one
    cross = torch.linalg.matrix_rank(torch.stack([mixed[moved][:50], a[moved][:50], b[moved][:50]], 1))
    assert (cross == 2).all()
    assert torch.equal(mixed, mix_sentences(a, b, 0.5, gen(2)))  # a pure function of the generator
    assert torch.equal(mix_sentences(a, b, 0.0, gen(2)), torch.nn.functional.normalize(a, dim=-1))

    noisy = perturb_sentences(a, 1.0, gen(2))
    assert torch.allclose(noisy.norm(dim=-1), torch.ones(4000))
    assert (noisy * a).sum(-1).mean().item() == pytest.approx(2**-0.5, abs=0.02)  # cos ~ 1 / sqrt(1 + s^2)


def test_sentence_mix_moves_toward_another_phrasing_of_the_task():
    lang = table()
    encoded = EncodeInstructions(lang)(batch(8), gen())
    out = SentenceMix(ALTS, lang, 1.0)(encoded, gen(5))
    for task, before, after in zip(encoded["task"], encoded[SENTENCE], out[SENTENCE], strict=True):
        others = lang.lookup(ALTS[task])[2]
        # on the arc between the task's vector and one of its phrasings' vectors
        ranks = [torch.linalg.matrix_rank(torch.stack([after, before, o])).item() for o in others]
        assert min(ranks) == 2
    assert torch.equal(out[LANG_TOKENS], encoded[LANG_TOKENS])  # the token states are kept
    g = gen()
    state = g.get_state()
    assert SentenceMix(ALTS, lang, 0.0)(encoded, g) is encoded and SentenceNoise(0.0)(encoded, g) is encoded
    assert torch.equal(g.get_state(), state)
    noisy = SentenceNoise(0.5)(encoded, gen(1))
    assert torch.allclose(noisy[SENTENCE].norm(dim=-1), torch.ones(8))
    assert not torch.equal(noisy[SENTENCE], encoded[SENTENCE])


def test_sentence_mix_and_noise_config_is_checked():
    with pytest.raises(ValueError, match="not in its table"):
        SentenceMix(ALTS, table(TASKS), 0.5)  # the phrasings were never encoded
    with pytest.raises(ValueError, match=r"SentenceMix.p is a probability"):
        SentenceMix(ALTS, table(), -0.1)
    with pytest.raises(ValueError, match="SentenceNoise.scale"):
        SentenceNoise(-1.0)
    with pytest.raises(ValueError, match="SentenceNoise.scale"):
        SentenceNoise(float("nan"))
    with pytest.raises(KeyError, match="EncodeInstructions"):
        SentenceNoise(0.5)(batch(), gen())


# ------------------------------------------------------------------------------------------ normalisation
def test_to_model_inputs_normalises_pads_and_slots():
    raw = EncodeInstructions(table())(batch(4), gen())
    emb = info()
    out = ToModelInputs(emb, MODEL)(raw, gen())
    inputs = out[MODEL_INPUTS]
    assert inputs["images"].shape == (4, 2, 3, 32, 32) and inputs["image_mask"].all()
    assert inputs["images"].min() >= 0 and inputs["images"].max() <= 1  # uint8 -> [0, 1]
    assert torch.allclose(inputs["state"][:, :6], (raw["observation.state"] - 1.0) / 0.5)  # mean 1, std 0.5
    assert (inputs["state"][:, 6:] == 0).all()  # zero-padded to max_state_dim
    assert (inputs["embodiment"] == emb.token).all() and torch.equal(inputs["sentence"], raw[SENTENCE])
    assert out[TARGETS].shape == (4, 4, 8)
    assert torch.allclose(out[TARGETS][..., :6], raw["action"] / 2.0)  # q01/q99 = -2/2 -> -1/1
    assert not out[LOSS_MASK][..., 6:].any() and not out[LOSS_MASK][0, 2:].any()  # padded dims and steps
    assert out[LOSS_MASK][1:, :, :6].all()
    # One camera given: the second slot is empty.
    one = ToModelInputs(emb, MODEL, cameras=CAMS[:1])(raw, gen())[MODEL_INPUTS]
    assert one["image_mask"][:, 0].all() and not one["image_mask"][:, 1].any()


def test_to_model_inputs_puts_everything_on_its_device():
    """On the `meta` device (no data, shapes only): every tensor the model receives follows `device`."""
    raw = EncodeInstructions(table())(batch(4), gen())
    out = ToModelInputs(info(), MODEL, device="meta")(raw, gen())
    tensors = [*out[MODEL_INPUTS].values(), out[TARGETS], out[LOSS_MASK]]
    assert all(t.device.type == "meta" for t in tensors)


def test_to_model_inputs_config_is_checked():
    with pytest.raises(ValueError, match="cameras; the model takes 2"):
        ToModelInputs(info(cameras=CAMS + ("observation.images.top",)), MODEL)
    with pytest.raises(ValueError, match="state/action dims"):
        ToModelInputs(info(state_dim=9), MODEL)
    with pytest.raises(ValueError, match="no camera"):
        ToModelInputs(info(cameras=()), MODEL)
    with pytest.raises(KeyError, match="EncodeInstructions"):
        ToModelInputs(info(), MODEL)(batch(), gen())
