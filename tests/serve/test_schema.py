"""Request validation and metadata, without a model: a hand-made ServedSpec stands in for the policy."""

from __future__ import annotations

import numpy as np
import pytest

from embodia.serve.schema import EmbodimentView, RequestError, ServedSpec, metadata, parse_request

FRONT, WRIST, STATE = "observation.images.front", "observation.images.wrist", "observation.state"


@pytest.fixture
def spec():
    features = {
        FRONT: {"shape": [64, 64, 3], "dtype": "uint8"},
        WRIST: {"shape": [64, 64, 3], "dtype": "uint8"},
        STATE: {"shape": [6], "dtype": "float32"},
        "task": {"shape": [], "dtype": "str"},
    }
    view = EmbodimentView("so101", features, (FRONT, WRIST), 6, 6, 30.0)
    return ServedSpec("so101", {"so101": view}, chunk_size=8, n_action_steps=4, checkpoint_hash="abc")


def obs(**over):
    o = {
        FRONT: np.zeros((64, 64, 3), np.uint8),
        WRIST: np.zeros((64, 64, 3), np.uint8),
        STATE: np.zeros(6, np.float32),
        "task": "pick up the red block",
    }
    o.update(over)
    return {k: v for k, v in o.items() if v is not None}


def test_a_valid_observation_passes_unchanged(spec):
    req = parse_request(obs(), spec)
    assert req.embodiment == "so101" and req.pending is None and req.delay == 0 and req.seed is None
    assert req.observation[STATE].dtype == np.float32 and req.observation["task"] == "pick up the red block"


def test_safe_casts_and_aliases(spec):
    req = parse_request(
        obs(
            task=None,
            prompt=b"touch the blue block",
            **{
                STATE: np.arange(6, dtype=np.float64),  # float64 -> float32
                FRONT: np.ones((3, 48, 80), np.uint8),  # channel-first, another size
                WRIST: np.full((32, 32, 3), 0.5),  # float image in [0, 1]
            },
        ),
        spec,
    )
    o = req.observation
    assert o["task"] == "touch the blue block"
    assert o[STATE].dtype == np.float32 and o[STATE][5] == 5.0
    assert o[FRONT].shape == (48, 80, 3) and o[FRONT].dtype == np.uint8
    assert o[WRIST].dtype == np.uint8 and o[WRIST].max() == 128


def test_json_style_lists_are_accepted(spec):
    req = parse_request(obs(**{STATE: [0.1] * 6, FRONT: np.zeros((8, 8, 3), int).tolist()}), spec)
    assert req.observation[FRONT].dtype == np.uint8 and req.observation[STATE].dtype == np.float32


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({STATE: None}, r"missing \['observation.state'\].*expected .*'observation.state' float32 \(6,\)"),
        ({FRONT: None}, "missing.*observation.images.front"),
        ({"task": None}, "no instruction.*'task' \\(or 'prompt'\\)"),
        ({STATE: np.array([0, 0, 0, np.nan, 0, 0])}, "NaN or inf"),
        ({STATE: np.array([0, 0, np.inf, 0, 0, 0])}, "NaN or inf"),
        ({STATE: np.array([1e39, 0, 0, 0, 0, 0])}, "float32 range"),
        ({STATE: np.zeros((1, 6), np.float32)}, r"shape \(1, 6\); expected \(6,\)"),
        ({STATE: np.zeros(5, np.float32)}, r"shape \(5,\)"),
        ({STATE: np.zeros(6, bool)}, "real-valued"),
        ({STATE: ["a"] * 6}, "numeric"),
        ({STATE: [[1, 2], [3]]}, "rectangular"),
        ({FRONT: np.zeros((64, 64), np.uint8)}, r"shape \(64, 64\); expected an RGB image"),
        ({FRONT: np.zeros((1, 64, 64, 3), np.uint8)}, "expected an RGB image"),
        ({FRONT: np.full((8, 8, 3), 300)}, "outside 0..255"),
        ({FRONT: np.full((8, 8, 3), 2.0)}, r"must be in \[0, 1\]"),
        ({FRONT: np.full((8, 8, 3), np.nan)}, "NaN"),
        ({"task": 3}, "must be a string"),
        ({"embodiment": "ur5"}, "unknown embodiment 'ur5'"),
        ({"delay": 2}, "'delay' needs 'pending'"),
        ({"seed": -1}, "'seed' must be in"),
        ({"seed": True}, "'seed' must be an integer"),
    ],
)
def test_bad_requests_say_what_was_expected(spec, over, message):
    with pytest.raises(RequestError, match=message):
        parse_request(obs(**over), spec)


def test_not_a_map(spec):
    with pytest.raises(RequestError, match="must be a map"):
        parse_request([1, 2], spec)


def test_pending_and_delay(spec):
    pending = np.zeros((5, 6), np.float64)
    req = parse_request(obs(pending=pending, delay=np.int64(2), seed=7), spec)
    assert req.pending.shape == (1, 5, 6) and req.pending.dtype == np.float32
    assert req.delay == 2 and req.seed == 7
    with pytest.raises(RequestError, match="'delay' must be in 0..5"):
        parse_request(obs(pending=pending, delay=6), spec)
    with pytest.raises(RequestError, match=r"expected \(P, 6\)"):
        parse_request(obs(pending=np.zeros((5, 4))), spec)
    with pytest.raises(RequestError, match="NaN"):
        parse_request(obs(pending=np.full((5, 6), np.nan)), spec)


def test_metadata_describes_a_valid_observation(spec):
    md = metadata(spec, 1024, "0.1.0")
    assert md["embodiment"] == "so101" and md["chunk_size"] == 8 and md["n_action_steps"] == 4
    assert md["action"] == {"shape": [8, 6], "dtype": "float32", "names": []}
    assert md["observation"][FRONT] == {"shape": [64, 64, 3], "dtype": "uint8", "any_size": True}
    assert md["observation"][STATE] == {"shape": [6], "dtype": "float32"}
    assert md["checkpoint"] == {"hash": "abc", "path": None} and md["fps"] == 30.0
    assert md["instruction_keys"] == ["task", "prompt"] and md["max_message_bytes"] == 1024
    assert set(md["embodiments"]) == {"so101"}


def test_instructions_are_capped_before_anything_reads_them(spec):
    from embodia.policy.language import MAX_CHARS
    from embodia.serve.schema import MAX_INSTRUCTION_CHARS

    assert MAX_INSTRUCTION_CHARS == MAX_CHARS  # the server refuses what the encoder would cut
    assert parse_request(obs(task="a" * MAX_INSTRUCTION_CHARS), spec).observation["task"] == "a" * MAX_CHARS
    for too_long in ("a" * (MAX_CHARS + 1), ("é" * (MAX_CHARS + 1)).encode(), b"a" * (4 * MAX_CHARS + 1),
                     np.array("a" * (MAX_CHARS + 1))):  # fmt: skip
        with pytest.raises(RequestError, match=f"at most {MAX_CHARS} characters"):
            parse_request(obs(task=too_long), spec)
    assert parse_request(obs(task=("é" * MAX_CHARS).encode()), spec).observation["task"] == "é" * MAX_CHARS
    assert metadata(spec, 1024)["max_instruction_chars"] == MAX_CHARS
