"""Evaluating openpi policy servers: the `--obs-map` spec, `embodia serve --obs-map` answering openpi's
own client in openpi keys, and `embodia eval ws://... --obs-map ...` closed loop through it.

The tests that use the real `openpi_client` skip without it (it pins numpy<2; CI installs it with
`pip install --no-deps openpi-client==0.1.2` and runs `pytest -k openpi`)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from serve_helpers import make_obs

from embodia.eval.protocol import ChunkPolicy
from embodia.eval.run import evaluate
from embodia.serve.client import ServerError
from embodia.serve.openpi import (
    DEFAULT_RESIZE,
    DEFAULT_STEPS,
    EmbodiaOpenpiClient,
    ObsMap,
    OpenpiPolicy,
    check_reply,
    connect,
    resize_with_pad,
)
from embodia.serve.protocol import packb, unpackb
from embodia.serve.schema import RequestError
from embodia.serve.server import InferenceService, running_server

FRONT, WRIST, STATE = "observation.images.front", "observation.images.wrist", "observation.state"
LIBERO_KEYS = (
    "observation.images.front=observation/image,observation.images.wrist=observation/wrist_image,"
    "observation.state=observation/state,task=prompt"
)
NO_CLIENT = "openpi-client is not installed (it pins numpy<2; pip install --no-deps openpi-client==0.1.2)"
# openpi-client's own connect() trips websockets 17's deprecation warning; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def openpi_client_module():
    return pytest.importorskip("openpi_client.websocket_client_policy", reason=NO_CLIENT)


@pytest.fixture(scope="module")
def openpi_url(tiny_policy):
    """The tiny policy served in openpi's LIBERO keys (`embodia serve --obs-map LIBERO_KEYS`)."""
    with running_server(tiny_policy, obs_map=ObsMap.parse(LIBERO_KEYS)) as url:
        yield url


def libero_obs(metadata: dict, seed: int = 0) -> dict:
    """An observation in openpi's LIBERO keys, built from the embodia side of the metadata."""
    obs = make_obs(metadata["observation"], seed=seed)
    return ObsMap.parse(LIBERO_KEYS).rename_to_server(obs)


# ------------------------------------------------------------------------------------------- the spec
def test_openpi_obs_map_parses_keys_and_settings():
    m = ObsMap.parse(LIBERO_KEYS)
    assert m.keys[0] == (FRONT, "observation/image") and m.keys[-1] == ("task", "prompt")
    assert (m.action_key, m.resize, m.steps, m.embodiment) == ("actions", DEFAULT_RESIZE, DEFAULT_STEPS, None)
    m = ObsMap.parse(f" {LIBERO_KEYS} , action=act, resize=256x320, steps=8, embodiment=so101_ee")
    assert (m.action_key, m.resize, m.steps, m.embodiment) == ("act", (256, 320), 8, "so101_ee")
    assert ObsMap.parse(str(m)) == m  # the canonical text round-trips
    assert ObsMap.parse("task=prompt,resize=none").resize is None
    assert ObsMap.parse("task=prompt,resize=96").resize == (96, 96)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "is empty"),
        ("observation.images.front", "is not EMBODIA_KEY=SERVER_KEY"),
        ("task=prompt,=x", "is not EMBODIA_KEY=SERVER_KEY"),
        ("task=prompt,", "is not EMBODIA_KEY=SERVER_KEY"),
        ("task=a=b", "is not EMBODIA_KEY=SERVER_KEY"),
        ("observation.image.front=observation/image", "unknown embodia key 'observation.image.front'"),
        ("observation.images.=x", "unknown embodia key"),
        ("task=prompt,observation.state=prompt", "duplicate server key (target) 'prompt'"),
        ("task=prompt,task=instruction", "duplicate embodia key 'task'"),
        ("task=prompt,steps=0", "steps must be a positive integer"),
        ("task=prompt,steps=five", "steps=five is not an integer"),
        ("task=prompt,steps=2,steps=3", "steps= is given twice"),
        ("task=prompt,resize=big", "resize=big is not N, HxW or none"),
        ("task=prompt,embodiment=ur5", "unknown embodiment 'ur5'"),
        ("steps=4,action=actions", "maps no observation key"),
    ],
)
def test_openpi_obs_map_refuses_bad_specs(spec, message):
    with pytest.raises(ValueError, match="--obs-map") as err:
        ObsMap.parse(spec)
    assert message in str(err.value)


def test_openpi_obs_map_errors_are_the_options_errors(capsys):
    from embodia.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "ws://127.0.0.1:9", "--obs-map", "observation.images.top=x,task=prompt,task=p"])
    assert exc.value.code == 2 and "duplicate embodia key 'task'" in capsys.readouterr().err
    assert main(["eval", "base", "--obs-map", LIBERO_KEYS]) == 2
    assert "give its ws://HOST:PORT" in " ".join(capsys.readouterr().out.split())
    assert main(["eval", "ws://127.0.0.1:9", "--obs-map", LIBERO_KEYS, "--join", "guided"]) == 2
    assert "no pending actions" in " ".join(capsys.readouterr().out.split())
    assert main(["eval", "ws://127.0.0.1:9", "--obs-map", LIBERO_KEYS]) == 2
    assert "cannot reach the policy server" in " ".join(capsys.readouterr().out.split())


def test_openpi_resize_with_pad_is_openpis():
    image_tools = pytest.importorskip("openpi_client.image_tools", reason=NO_CLIENT)
    rng = np.random.default_rng(0)
    for shape in [(64, 64, 3), (96, 128, 3), (480, 640, 3), (100, 37, 3)]:
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        for size in [(224, 224), (200, 160)]:
            np.testing.assert_array_equal(
                resize_with_pad(img, *size), image_tools.resize_with_pad(img, *size)
            )


def test_openpi_request_mapping_both_ways():
    m = ObsMap.parse(LIBERO_KEYS + ",resize=96x128")
    obs = {FRONT: np.full((64, 64, 3), 200, np.uint8), WRIST: np.ones((64, 64, 3), np.float32),
           STATE: np.arange(6, dtype=np.float64), "task": "pick up the red block", "extra": 1}  # fmt: skip
    msg = m.to_server(obs)
    assert sorted(msg) == ["observation/image", "observation/state", "observation/wrist_image", "prompt"]
    image = msg["observation/image"]
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    assert image[:, :16].max() == 0 and image[:, 16:112].min() == 200  # letterboxed, aspect kept
    assert msg["observation/wrist_image"].max() == 255 and msg["observation/state"].dtype == np.float32
    back = m.from_server(msg | {"seed": 3})
    assert sorted(back) == sorted([FRONT, WRIST, STATE, "task", "seed"])
    with pytest.raises(ValueError, match="has no observation.images.wrist"):
        m.to_server({k: v for k, v in obs.items() if k != WRIST})
    with pytest.raises(RequestError, match=r"missing \['prompt'\]"):
        m.from_server({k: v for k, v in msg.items() if k != "prompt"})


# ------------------------------------------------------------------------------------------ the server
def test_openpi_server_answers_the_real_openpi_client(openpi_url, tiny_policy):
    wcp = openpi_client_module()
    policy = wcp.WebsocketClientPolicy(host=openpi_url)
    md = policy.get_server_metadata()
    assert md["obs_map"]["keys"]["observation/image"] == FRONT and md["obs_map"]["actions"] == "actions"
    obs = libero_obs(md, seed=3)
    assert {"observation/image", "observation/wrist_image", "observation/state", "prompt"} <= set(obs)
    reply = policy.infer(obs | {"seed": np.int64(5)})
    assert set(reply) == {"actions", "server_timing"} and reply["actions"].shape == (8, 6)
    embodia_obs = ObsMap.parse(LIBERO_KEYS).from_server(obs)
    gen = torch.Generator().manual_seed(5)
    noise = torch.randn(1, tiny_policy.chunk_size, tiny_policy.cfg.max_action_dim, generator=gen)
    expected = tiny_policy.predict_chunk([embodia_obs], noise=noise)[0]
    np.testing.assert_allclose(reply["actions"], expected, atol=1e-5)
    # 224 x 224 images, as openpi's LIBERO client sends them, are fitted to the model's 64 px.
    big = ObsMap.parse(LIBERO_KEYS).to_server(embodia_obs)
    assert big["observation/image"].shape == (224, 224, 3)
    assert policy.infer(big)["actions"].shape == (8, 6)
    with pytest.raises(RuntimeError, match=r"bad request: .*missing \['observation/wrist_image'\]"):
        policy.infer({k: v for k, v in obs.items() if k != "observation/wrist_image"})


def test_openpi_server_refuses_unmapped_requests_over_http(openpi_url):
    from embodia.serve.client import Client

    with Client(openpi_url) as client:
        obs = libero_obs(client.metadata)
        assert client.infer(obs)["actions"].shape == (8, 6)
    embodia_keys = make_obs(client.metadata["observation"])  # embodia's own keys: not what it takes
    req = urllib.request.Request(openpi_url.replace("ws://", "http://") + "/v1/act", data=packb(embodia_keys),
                                 headers={"Content-Type": "application/msgpack"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 422 and "missing ['observation/image'" in json.loads(err.value.read())["error"]


def test_openpi_serve_refuses_keys_the_policy_does_not_take(tiny_policy):
    with pytest.raises(ValueError, match="names observation.images.top, which this policy does not take"):
        InferenceService(tiny_policy, obs_map=ObsMap.parse("observation.images.top=observation/image"))


def test_openpi_serve_without_a_map_is_unchanged(server_url):
    from embodia.serve.client import Client

    with Client(server_url) as client:
        reply = client.infer(make_obs(client.metadata["observation"]))
        assert "obs_map" not in client.metadata and set(reply) == {"actions", "embodiment", "server_timing"}


# ------------------------------------------------------------------------------------------- the eval
def test_openpi_policy_is_a_chunk_policy_over_either_client(openpi_url):
    for client in [EmbodiaOpenpiClient(openpi_url), connect(openpi_url)]:
        policy = OpenpiPolicy(client, ObsMap.parse(LIBERO_KEYS + ",steps=3"), openpi_url)
        assert isinstance(policy, ChunkPolicy) and (policy.chunk_size, policy.n_action_steps) == (3, 3)
        md = policy.metadata
        obs = [make_obs(md["observation"], seed=i) for i in range(2)]
        chunks = policy.predict_chunk(obs, noise_seed=[1, 2])
        assert chunks.shape == (2, 3, 6) and chunks.dtype == np.float32
        with pytest.raises(ValueError, match="no pending actions"):
            policy.predict_chunk(obs[:1], pending=np.zeros((1, 5, 6), np.float32), delay=1)
        policy.close()


def test_openpi_eval_in_process_through_embodias_client(openpi_url, tmp_path):
    policy = OpenpiPolicy(EmbodiaOpenpiClient(openpi_url), ObsMap.parse(LIBERO_KEYS + ",steps=4"), openpi_url)
    res = evaluate(
        policy, "touch", episodes=1, num_envs=1, videos_per_task=0, out_dir=tmp_path,
        image_size=64, max_steps=6, in_process=True, show_progress=False,
    )  # fmt: skip
    (ep,) = res.episodes
    assert ep.steps == 6 and ep.chunks == 2  # 4 actions per chunk: chunks at 0 and 4
    policy.close()


def test_openpi_cli_eval_through_openpi_client(openpi_url, tmp_path, capsys, monkeypatch):
    openpi_client_module()  # `connect` picks openpi-client's WebsocketClientPolicy when it is installed
    from embodia.cli import main

    clients = []
    infer = OpenpiPolicy._infer
    monkeypatch.setattr(
        OpenpiPolicy, "_infer", lambda self, msg: clients.append(self.client) or infer(self, msg)
    )
    out = tmp_path / "ev"
    argv = ["eval", openpi_url, "--obs-map", LIBERO_KEYS + ",steps=4", "--suite", "touch", "--episodes", "2",
            "--num-envs", "1", "--max-steps", "8", "--image-size", "64", "--videos", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["policy_class"].endswith("OpenpiPolicy") and data["n_action_steps"] == 4
    assert data["overall"]["n"] == 2 and len(data["episodes"]) == 2
    assert all(ep["steps"] == 8 and ep["chunks"] == 2 for ep in data["episodes"])
    assert (out / "report.html").is_file() and "results:" in printed
    assert len(clients) == 4 and {type(c).__name__ for c in clients} == {"WebsocketClientPolicy"}
    print(printed)  # the summary table, for the record (pytest -s)


# ---------------------------------------------------------------------------------------- bad replies
@contextmanager
def fake_openpi_server(reply, seen: list | None = None):
    """A stand-in openpi server: empty metadata (as openpi's policies mostly send), then `reply` to
    every request."""
    from websockets.sync.server import serve

    def handler(ws):
        ws.send(packb({}))
        for message in ws:
            if seen is not None:
                seen.append(unpackb(message))
            ws.send(packb(reply))

    with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        server.shutdown()
    thread.join(5)


def sim_obs() -> dict:
    return {FRONT: np.zeros((64, 64, 3), np.uint8), WRIST: np.zeros((64, 64, 3), np.uint8),
            STATE: np.zeros(6, np.float32), "task": "touch the red block"}  # fmt: skip


@pytest.mark.parametrize(
    "reply, message",
    [
        ({"action": np.zeros((10, 6), np.float32)}, "has no 'actions' (it has ['action'])"),
        ({"actions": np.zeros((10, 7), np.float32)}, "have 7 dimensions; so101 takes 6"),
        ({"actions": np.zeros((10, 32), np.float32)}, "must return the first 6"),
        ({"actions": np.zeros(6, np.float32)}, "has shape (6,); expected (horizon, 6)"),
        ({"actions": np.zeros((1, 10, 6), np.float32)}, "has shape (1, 10, 6)"),
        ({"actions": np.zeros((3, 6), np.float32)}, "returned 3 actions per chunk; steps=5"),
        ({"actions": np.full((10, 6), np.nan, np.float32)}, "NaN or inf"),
        ({"actions": np.full((10, 6), 1e300)}, "NaN or inf actions (or beyond float32)"),
        ({"actions": np.array([["a"] * 6] * 10)}, "must be numbers"),
        ({"actions": "go"}, "must be numbers"),
    ],
)
def test_openpi_bad_replies_are_refused(reply, message):
    with pytest.raises(ServerError) as err:
        check_reply(reply, "actions", DEFAULT_STEPS, "so101")
    assert message in str(err.value)


@pytest.mark.parametrize("kind", ["openpi_client", "embodia"])
def test_openpi_policy_refuses_a_bad_server_over_the_wire(kind):
    if kind == "openpi_client":
        openpi_client_module()
    seen: list = []
    with fake_openpi_server({"actions": np.zeros((10, 7), np.float32)}, seen) as url:
        client = connect(url) if kind == "openpi_client" else EmbodiaOpenpiClient(url)
        if kind == "openpi_client":
            assert type(client).__name__ == "WebsocketClientPolicy", NO_CLIENT
        policy = OpenpiPolicy(client, ObsMap.parse(LIBERO_KEYS), url)
        with pytest.raises(ServerError, match="have 7 dimensions; so101 takes 6"):
            policy.predict_chunk([sim_obs()])
        policy.close()
    (request,) = seen  # what an openpi server receives: its keys, 224 px images, nothing else
    assert sorted(request) == ["observation/image", "observation/state", "observation/wrist_image", "prompt"]
    assert request["observation/image"].shape == (224, 224, 3) and request["prompt"] == "touch the red block"


def test_openpi_cli_eval_refuses_a_bad_reply_clearly(tmp_path, capsys):
    from embodia.cli import main

    with fake_openpi_server({"actions": np.full((10, 6), np.inf, np.float32)}) as url:
        argv = ["eval", url, "--obs-map", LIBERO_KEYS, "--suite", "touch", "--episodes", "1", "--num-envs", "1",
                "--max-steps", "4", "--image-size", "64", "--videos", "0", "--out", str(tmp_path / "ev")]  # fmt: skip
        assert main(argv) == 2
    printed = " ".join(capsys.readouterr().out.split())
    assert "the openpi policy server's reply was refused" in printed and "NaN or inf" in printed
