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
