import pytest
import torch

from embodia.policy.language import HIDDEN, MAX_TOKENS, InstructionEncoder


@pytest.fixture(scope="module")
def encoder():
    return InstructionEncoder()


def test_tokens_separate_what_the_pooled_vector_blurs(encoder):
    tokens, mask, pooled = encoder.encode(
        ["push the red block to the left", "push the red block to the right"]
    )
    assert (
        tokens.shape == (2, MAX_TOKENS, HIDDEN)
        and mask.shape == (2, MAX_TOKENS)
        and pooled.shape == (2, HIDDEN)
    )
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    cos_pooled = float(pooled[0] @ pooled[1])
    n = int(mask[0].sum())
    token_cos = torch.nn.functional.cosine_similarity(tokens[0, :n], tokens[1, :n], dim=-1)
    print(f"pooled cosine {cos_pooled:.3f}; lowest per-token cosine {float(token_cos.min()):.3f}")
    assert cos_pooled > 0.9  # the sentence vectors are nearly the same ...
    assert float(token_cos.min()) < cos_pooled - 0.05  # ... but the direction token differs clearly


def test_paraphrases_are_closer_than_other_tasks(encoder):
    _, _, p = encoder.encode(
        ["pick up the red block", "lift the red block", "put the blue block in the bowl"]
    )
    assert float(p[0] @ p[1]) > float(p[0] @ p[2])


def test_each_distinct_instruction_is_encoded_once(encoder):
    before = encoder.cache_size
    a = encoder.encode(["touch the green block"] * 3)
    assert encoder.cache_size == before + 1
    b = encoder.encode(["touch the green block"])
    assert torch.equal(a[0][0], b[0][0])
    with pytest.raises(TypeError):
        encoder.encode("a bare string")


def test_an_instruction_table_gives_back_the_encoders_output_and_nothing_else(encoder, tmp_path):
    from safetensors.torch import save_file

    from embodia.policy.language import InstructionTable, save_instruction_table

    texts = ["push the red block to the left", "lift the red block"]
    path = save_instruction_table(encoder, texts + texts[:1], tmp_path / "t" / "instructions.safetensors")
    assert (path.stat().st_mode & 0o777) != 0o600 and not list(path.parent.glob("*.tmp"))
    table = InstructionTable(path)
    assert table.cache_size == 2
    for got, want in zip(table.encode(texts[::-1]), encoder.encode(texts[::-1]), strict=True):
        assert got.dtype == want.dtype and torch.equal(got, want)
    with pytest.raises(ValueError, match="not in the table.*'lift the blue block'.*--save-instructions"):
        table.encode(["lift the red block", "lift the blue block"])
    with pytest.raises(TypeError):
        table.encode("a bare string")

    # Bad files: a clear error naming the file and how to write a good one.
    with pytest.raises(FileNotFoundError, match="--save-instructions"):
        InstructionTable(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable instruction table"):
        InstructionTable(tmp_path / "junk.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"tokens": torch.zeros(1, 4, HIDDEN)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="expected 'embodia-instructions/1'"):
        InstructionTable(other)
    save_file(
        {"tokens": torch.zeros(1, 4, HIDDEN)}, str(other), metadata={"format": "embodia-instructions/1"}
    )
    with pytest.raises(ValueError, match="no list of instructions"):
        InstructionTable(other)
    save_file(
        {
            "tokens": torch.zeros(1, 4, HIDDEN),
            "mask": torch.ones(1, 4, dtype=torch.uint8),
            "pooled": torch.zeros(1, HIDDEN),
        },
        str(other),
        metadata={"format": "embodia-instructions/1", "texts": '["x"]'},
    )
    with pytest.raises(ValueError, match=r"expected tokens \(1, 32, 384\)"):
        InstructionTable(other)


def test_the_cache_is_bounded_least_recently_used_first(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "max_cached", 3)
    encoder._cache.clear()
    first = encoder.encode(["touch the red block"])[2]
    encoder.encode(["lift the blue block", "push the green block left"])
    encoder.encode(["touch the red block"])  # used again: now the most recent
    encoder.encode(["stack the red block on the blue block"])
    assert encoder.cache_size == 3 and "lift the blue block" not in encoder._cache
    assert "touch the red block" in encoder._cache
    # A batch larger than the cache still encodes every one of its instructions.
    many = [f"touch block number {i}" for i in range(5)]
    tokens, mask, pooled = encoder.encode(many)
    assert tokens.shape[0] == 5 and encoder.cache_size == 3
    torch.testing.assert_close(encoder.encode(["touch the red block"])[2], first)


def test_a_huge_prompt_costs_what_its_first_tokens_cost(encoder, monkeypatch):
    from embodia.policy.language import MAX_CHARS

    seen = []
    tokenizer = encoder.tokenizer

    def spy(texts, **kwargs):
        seen.extend(len(t) for t in texts)
        return tokenizer(texts, **kwargs)

    monkeypatch.setattr(encoder, "tokenizer", spy)
    text = "touch the red block " + "very " * 200_000  # 1 MB
    a, b = encoder.encode([text]), encoder.encode([text[:MAX_CHARS]])
    assert seen == [MAX_CHARS, MAX_CHARS]  # cut before tokenising
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y)
