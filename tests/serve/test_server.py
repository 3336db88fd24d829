"""`embodia serve`: openpi's websocket protocol and the HTTP API against the tiny trained policy,
served by uvicorn on a free loopback port."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from openpi_wire import OpenpiStyleClient
from serve_helpers import make_obs
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from embodia.serve.client import Client, ServerError
from embodia.serve.protocol import packb, unpackb
from embodia.serve.server import WARM_UP_LENGTHS, FifoLock, check_binding, running_server

STATE = "observation.state"
FRONT = "observation.images.front"


def http(url: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one HTTP call to the server behind ws:// `url`."""
    req = urllib.request.Request(url.replace("ws://", "http://") + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def seeded_noise(policy, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, policy.chunk_size, policy.cfg.max_action_dim, generator=gen)


@pytest.fixture(scope="module")
def client(server_url):
    with Client(server_url) as c:
        yield c


def test_metadata_on_connect_is_enough_to_build_an_observation(client, tiny_policy):
    md = client.metadata
    assert md["server"] == "embodia" and md["embodiment"] == tiny_policy.embodiment
    assert md["chunk_size"] == 8 and md["n_action_steps"] == 4
    assert md["action"]["shape"] == [8, 6] and md["action"]["dtype"] == "float32"
    assert md["checkpoint"] == {"hash": tiny_policy.checkpoint_hash, "path": str(tiny_policy.path)}
    assert md["fps"] == tiny_policy.info.fps
    assert md["observation"][STATE] == {"shape": [6], "dtype": "float32"}
    assert md["observation"][FRONT]["dtype"] == "uint8" and md["observation"][FRONT]["shape"] == [64, 64, 3]
    actions = client.act(make_obs(md["observation"]))
    assert actions.shape == (8, 6) and actions.dtype == np.float32 and np.all(np.isfinite(actions))


def test_http_metadata_and_health(server_url, client):
    status, _, body = http(server_url, "/v1/metadata")
    assert status == 200 and json.loads(body) == json.loads(json.dumps(client.metadata))
    status, _, body = http(server_url, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok", "ready": True}


def test_act_matches_predict_chunk_with_the_same_noise(client, tiny_policy):
    obs = make_obs(client.metadata["observation"], seed=1)
    reply = client.infer({**obs, "seed": 3})
    expected = tiny_policy.predict_chunk([obs], noise=seeded_noise(tiny_policy, 3))[0]
    np.testing.assert_allclose(reply["actions"], expected, atol=1e-5)
    assert reply["server_timing"]["infer_ms"] > 0
    np.testing.assert_array_equal(client.act(obs, seed=3), reply["actions"])  # deterministic
    assert not np.allclose(client.act(obs, seed=4), reply["actions"])


def test_prompt_alias_float64_state_and_other_image_sizes(client):
    obs = make_obs(client.metadata["observation"], seed=2)
    ref = client.act(obs, seed=0)
    alias = {k: v for k, v in obs.items() if k != "task"} | {"prompt": obs["task"]}
    np.testing.assert_allclose(client.act(alias, seed=0), ref, atol=1e-6)
    wide = {**obs, STATE: obs[STATE].astype(np.float64)}
    np.testing.assert_allclose(client.act(wide, seed=0), ref, atol=1e-6)
    big = {**obs, FRONT: np.zeros((120, 160, 3), np.uint8)}
    assert client.act(big, seed=0).shape == (8, 6)


def test_real_time_chunking_fields(client, tiny_policy):
    obs = make_obs(client.metadata["observation"], seed=5)
    pending = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32) * 0.1
    got = client.act(obs, pending=pending, delay=2, seed=1)
    expected = tiny_policy.predict_chunk(
        [obs], noise=seeded_noise(tiny_policy, 1), pending=pending[None], delay=2
    )[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(got[:2], pending[:2], atol=1e-3)  # the frozen actions are reproduced


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o | {STATE: np.array([0, 0, np.nan, 0, 0, 0], np.float32)}, "NaN"),
        (lambda o: {k: v for k, v in o.items() if k != STATE}, "missing.*observation.state.*expected"),
        (lambda o: o | {FRONT: o[FRONT][None]}, r"shape \(1, 64, 64, 3\); expected an RGB image"),
    ],
)
def test_bad_observation_closes_only_its_connection(server_url, client, change, message):
    obs = make_obs(client.metadata["observation"])
    with connect(server_url) as bystander, connect(server_url) as ws:
        unpackb(bystander.recv())
        unpackb(ws.recv())
        ws.send(packb(change(obs)))
        error = ws.recv()
        assert isinstance(error, str) and error.startswith("bad request")
        assert __import__("re").search(message, error), error
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd.code == 1008
        bystander.send(packb(obs))  # the other connection is unaffected
        assert unpackb(bystander.recv())["actions"].shape == (8, 6)
    assert client.act(obs).shape == (8, 6)  # and so is the rest of the server


def test_client_raises_the_servers_message_and_reconnects(server_url):
    with Client(server_url) as c:
        obs = make_obs(c.metadata["observation"])
        with pytest.raises(ServerError, match="NaN or inf"):
            c.act(obs | {STATE: np.full(6, np.inf)})
        assert c.act(obs).shape == (8, 6)


def test_garbage_and_text_frames_are_refused(server_url):
    with connect(server_url) as ws:
        ws.recv()
        ws.send(b"\xc1not msgpack")
        assert "not a valid msgpack message" in ws.recv()
    with connect(server_url) as ws:
        ws.recv()
        ws.send('{"task": "json over websocket"}')
        assert "expected binary msgpack" in ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd.code == 1003


def test_http_act_json_and_msgpack(server_url, client):
    obs = make_obs(client.metadata["observation"], seed=7)
    ref = client.act(obs, seed=9)
    as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in obs.items()} | {"seed": 9}
    status, headers, body = http(
        server_url, "/v1/act", json.dumps(as_json).encode(), {"Content-Type": "application/json"}
    )
    assert status == 200 and headers["content-type"] == "application/json"
    np.testing.assert_allclose(np.array(json.loads(body)["actions"]), ref, atol=1e-6)
    status, headers, body = http(
        server_url, "/v1/act", packb(obs | {"seed": 9}), {"Content-Type": "application/msgpack"}
    )
    assert status == 200 and headers["content-type"] == "application/msgpack"
    np.testing.assert_allclose(unpackb(body)["actions"], ref, atol=1e-6)
    with Client(server_url.replace("ws://", "http://")) as over_http:
        assert over_http.metadata["chunk_size"] == 8
        np.testing.assert_allclose(over_http.act(obs, seed=9), ref, atol=1e-6)


@pytest.mark.parametrize(
    ("body", "ctype", "status", "message"),
    [
        (b'{"task": "x"}', "application/json", 422, "missing"),
        (b"{not json", "application/json", 422, "not valid JSON"),
        (b'{"observation.state": [NaN, 0, 0, 0, 0, 0]}', "application/json", 422, "missing"),
        (b"hello", "text/plain", 415, "Content-Type"),
    ],
)
def test_http_errors(server_url, body, ctype, status, message):
    code, _, reply = http(server_url, "/v1/act", body, {"Content-Type": ctype})
    assert code == status and message in json.loads(reply)["error"]


def test_json_nan_state_is_rejected(server_url, client):
    obs = make_obs(client.metadata["observation"])
    as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in obs.items()}
    as_json[STATE][0] = float("nan")
    code, _, reply = http(
        server_url, "/v1/act", json.dumps(as_json).encode(), {"Content-Type": "application/json"}
    )
    assert code == 422 and "NaN" in json.loads(reply)["error"]


def test_non_loopback_needs_an_api_key():
    with pytest.raises(ValueError, match="--api-key"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ValueError, match="--api-key"):
        check_binding("robot-server.example", None)
    check_binding("0.0.0.0", "key")
    check_binding("127.0.0.1", None)
    check_binding("::1", None)


def test_cli_refuses_to_expose_without_a_key(capsys, monkeypatch):
    from embodia.cli import main

    monkeypatch.delenv("EMBODIA_API_KEY", raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().out


def test_api_key_is_checked_on_websocket_and_http(tiny_policy):
    # The check does not depend on the address; bind loopback so no test traffic leaves the machine.
    with running_server(tiny_policy, api_key="s3cret") as url:
        obs = make_obs(Client(url, api_key="s3cret").metadata["observation"])
        with pytest.raises(ServerError, match="HTTP 403.*API key"):
            Client(url)
        with pytest.raises(ServerError, match="HTTP 403"):
            Client(url, api_key="wrong")
        with pytest.raises(InvalidStatus):
            connect(url, additional_headers={"Authorization": "Api-Key s3cre"})
        assert Client(url, api_key="s3cret").act(obs).shape == (8, 6)  # sends 'Api-Key <key>'
        with connect(url, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
            ws.recv()
            ws.send(packb(obs))
            assert unpackb(ws.recv())["actions"].shape == (8, 6)
        assert http(url, "/v1/metadata")[0] == 401
        assert http(url, "/v1/metadata", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert http(url, "/v1/metadata", headers={"Authorization": "Api-Key s3cret"})[0] == 200
        body, ctype = packb(obs), {"Content-Type": "application/msgpack"}
        assert http(url, "/v1/act", body, ctype)[0] == 401
        assert http(url, "/v1/act", body, ctype | {"Authorization": "Bearer s3cret"})[0] == 200
        assert http(url, "/healthz")[0] == 200  # health checks need no key


def test_oversize_messages_are_refused(tiny_policy):
    limit = 64 * 1024
    with running_server(tiny_policy, max_message_bytes=limit) as url:
        client = Client(url)
        assert client.metadata["max_message_bytes"] == limit
        obs = make_obs(client.metadata["observation"])
        huge = obs | {FRONT: np.zeros((200, 200, 3), np.uint8)}  # 120 kB
        with connect(url) as ws:
            ws.recv()
            ws.send(packb(huge))
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv()
            assert closed.value.rcvd.code == 1009
        assert client.act(obs).shape == (8, 6)  # a normal message still works
        code, _, reply = http(url, "/v1/act", packb(huge), {"Content-Type": "application/msgpack"})
        assert code == 413 and "limit" in json.loads(reply)["error"]


# openpi-client's own connect() call trips websockets 17's deprecation warning; not ours to fix.
@pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")
@pytest.mark.parametrize("kind", ["real", "wire"])
def test_openpi_client_works_unchanged(server_url, tiny_policy, kind):
    if kind == "real":
        wcp = pytest.importorskip(
            "openpi_client.websocket_client_policy",
            reason="openpi-client is not installed (it pins numpy<2; install it with --no-deps to run this)",
        )
        host, port = server_url.rsplit(":", 1)
        policy = wcp.WebsocketClientPolicy(host=host, port=int(port))
        metadata = policy.get_server_metadata()
    else:
        policy = OpenpiStyleClient(server_url)
        metadata = policy.metadata
    assert metadata["chunk_size"] == 8 and metadata["observation"][STATE]["shape"] == [6]
    obs = make_obs(metadata["observation"], seed=11)
    obs = {k: v for k, v in obs.items() if k != "task"} | {"prompt": obs["task"], "seed": np.int64(5)}
    reply = policy.infer(obs)
    assert reply["actions"].shape == (8, 6) and "infer_ms" in reply["server_timing"]
    expected = tiny_policy.predict_chunk([obs | {"task": obs["prompt"]}], noise=seeded_noise(tiny_policy, 5))[
        0
    ]
    np.testing.assert_allclose(reply["actions"], expected, atol=1e-5)
    with pytest.raises(RuntimeError, match="Error in inference server:\nbad request.*NaN"):
        policy.infer(obs | {STATE: np.full(6, np.nan, np.float32)})


def test_inference_lock_is_granted_in_arrival_order():
    lock, order, threads = FifoLock(), [], []
    lock.__enter__()  # held, as by a request being computed
    for i in range(5):

        def wait_then_record(i=i):
            with lock:
                order.append(i)

        threads.append(threading.Thread(target=wait_then_record))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while lock._next_ticket != i + 2 and time.monotonic() < deadline:  # thread i is queued
            time.sleep(0.001)
    lock.__exit__()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------------------------- hardening
@pytest.mark.parametrize("embodiment", [["so101"], {"name": "so101"}, 3])
def test_a_non_string_embodiment_is_a_client_error(server_url, client, embodiment):
    obs = make_obs(client.metadata["observation"]) | {"embodiment": embodiment}
    code, _, reply = http(server_url, "/v1/act", packb(obs), {"Content-Type": "application/msgpack"})
    assert code == 422 and "'embodiment' must be a string" in json.loads(reply)["error"]
    with connect(server_url) as ws:
        unpackb(ws.recv())
        ws.send(packb(obs))
        assert "'embodiment' must be a string" in ws.recv()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
        assert closed.value.rcvd.code == 1008


def test_json_nested_too_deep_is_a_client_error(server_url):
    body = b"[" * 100_000 + b"]" * 100_000
    code, _, reply = http(server_url, "/v1/act", body, {"Content-Type": "application/json"})
    assert code == 422 and "nests too deeply" in json.loads(reply)["error"]


class _NaNPolicy:
    """The tiny policy whose output turns NaN when the state's first value is negative."""

    def __init__(self, policy):
        self._policy = policy

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def predict_chunk(self, observations, **kwargs):
        out = self._policy.predict_chunk(observations, **kwargs)
        if observations[0][STATE][0] < 0:
            out[:, 3, 1] = np.nan
        return out


def test_non_finite_actions_never_leave_the_server(tiny_policy):
    with running_server(_NaNPolicy(tiny_policy)) as url, Client(url) as c:
        obs = make_obs(c.metadata["observation"])
        good = obs | {STATE: np.abs(obs[STATE])}
        bad = obs | {STATE: np.full(6, -0.5, np.float32)}  # plausible, so it reaches the policy
        with pytest.raises(ServerError, match="not finite"):
            c.act(bad)
        assert np.all(np.isfinite(c.act(good)))  # the server goes on
        as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in bad.items()}
        code, _, reply = http(
            url, "/v1/act", json.dumps(as_json).encode(), {"Content-Type": "application/json"}
        )
        assert (
            code == 422 and "not finite" in json.loads(reply)["error"] and "0.5" in json.loads(reply)["error"]
        )


def test_an_absurd_state_is_refused_before_inference(tiny_policy):
    """A state of 1e30 (or one element of 1e25) is refused by name, in the policy's standard deviations,
    before it costs an inference: never NaN in a reply, never a 500."""
    calls = []

    class Counting(_NaNPolicy):
        def predict_chunk(self, observations, **kwargs):
            calls.append(1)
            return self._policy.predict_chunk(observations, **kwargs)

    with running_server(Counting(tiny_policy)) as url, Client(url) as c:
        obs = make_obs(c.metadata["observation"])
        warmed = len(calls)
        for state in (np.full(6, 1e30, np.float32), np.array([0, 0, 1e25, 0, 0, 0], np.float32)):
            with pytest.raises(ServerError, match="standard deviations .* check its units"):
                c.act(obs | {STATE: state})
        assert len(calls) == warmed  # no inference was spent on them
        as_json = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in obs.items()}
        as_json[STATE] = [0, 0, 1e25, 0, 0, 0]
        code, _, reply = http(
            url, "/v1/act", json.dumps(as_json).encode(), {"Content-Type": "application/json"}
        )
        assert code == 422 and "standard deviations" in json.loads(reply)["error"]
        assert np.all(np.isfinite(c.act(obs)))  # the server goes on


@pytest.mark.parametrize(
    "shape, why",
    [((1, 23_000, 3), "aspect ratio"), ((2000, 1000, 3), "1920 pixels"), ((3, 1, 9000), "aspect ratio")],
)
def test_oversized_or_elongated_images_are_refused_before_any_work(client, shape, why):
    """A (1, W, 3) image used to be padded to a W x W float square before resizing (quadratic memory and
    time under the inference lock); now sides and aspect ratio are checked first."""
    obs = make_obs(client.metadata["observation"])
    with pytest.raises(ServerError, match=why):
        client.act(obs | {FRONT: np.zeros(shape, np.uint8)})


def test_the_largest_accepted_image_is_served_like_its_fitted_copy(client, tiny_policy):
    """A 1920 x 1080 frame is fitted to the model's input outside the lock, exactly as the policy would."""
    from embodia.policy.inputs import fit_image

    obs = make_obs(client.metadata["observation"], seed=3)
    frame = np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), dtype=np.uint8)
    fitted = fit_image(frame, tiny_policy.cfg.image_size)
    assert fitted.shape == (tiny_policy.cfg.image_size,) * 2 + (3,) and fitted.dtype == np.uint8
    big = client.act(obs | {FRONT: frame}, seed=5)
    np.testing.assert_array_equal(big, client.act(obs | {FRONT: fitted}, seed=5))


def test_json_bodies_are_kept_small_and_msgpack_lists_bounded(server_url, client):
    from embodia.serve.protocol import MAX_LIST_ITEMS
    from embodia.serve.server import MAX_JSON_BYTES

    assert client.metadata["max_json_bytes"] == MAX_JSON_BYTES
    body = b'{"task": "x", "observation.state": [' + b"0," * (MAX_JSON_BYTES // 2) + b"0]}"
    code, _, reply = http(server_url, "/v1/act", body, {"Content-Type": "application/json"})
    assert code == 413 and "msgpack" in json.loads(reply)["error"]
    many = packb({"task": "x", "observation.state": [[0] * 1000] * (MAX_LIST_ITEMS // 1000 + 1)})
    code, _, reply = http(server_url, "/v1/act", many, {"Content-Type": "application/msgpack"})
    assert code == 422 and "numpy arrays" in json.loads(reply)["error"]


def test_request_work_happens_outside_the_inference_lock(tiny_policy):
    """While another request holds the model, a new request's image is fitted and its instruction
    encoded: only the inference itself waits."""
    from embodia.serve.server import InferenceService

    service = InferenceService(tiny_policy)
    obs = make_obs(service.metadata["observation"]) | {"task": "a sentence nobody has sent before"}
    obs[FRONT] = np.zeros((480, 640, 3), np.uint8)
    done = threading.Event()
    with service._lock:  # the model is busy
        worker = threading.Thread(target=lambda: (service.act(obs), done.set()), daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        encoder = tiny_policy.encoder
        while "a sentence nobody has sent before" not in encoder._cache and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "a sentence nobody has sent before" in encoder._cache and not done.is_set()
    worker.join(timeout=30)
    assert done.is_set()


def test_the_server_warms_up_before_it_answers(tiny_policy):
    calls = []

    class Counting(_NaNPolicy):
        def predict_chunk(self, observations, **kwargs):
            calls.append(kwargs.get("embodiment"))
            return self._policy.predict_chunk(observations, **kwargs)

    with running_server(Counting(tiny_policy)) as url:
        # Four instructions per embodiment (one per language bucket of the fast sampler), already done.
        assert calls == [e for e in sorted(tiny_policy.embodiments) for _ in WARM_UP_LENGTHS]
        assert json.loads(http(url, "/healthz")[2]) == {"status": "ok", "ready": True}


def test_a_failed_requests_message_is_released_with_its_error():
    """The error of a bad request reaches the event loop through the worker thread's future (a reference
    cycle): its frames held the message until the cyclic collector ran, and a client sending bad 4 MB
    messages back to back kept +64 MB resident. Answering the error clears them."""
    import weakref

    from embodia.serve.schema import RequestError
    from embodia.serve.server import _error_text

    class Message(bytearray):
        pass

    def decode(body):
        try:
            raise KeyError("inner")  # chained as __context__
        except KeyError:
            raise RequestError("bad message") from None

    def act_encoded(body):
        message = Message(body)  # noqa: F841 (a local that the traceback's frame holds)
        decode(body)

    body = Message(1 << 20)
    ref = weakref.ref(body)
    try:
        act_encoded(body)
    except RequestError as exc:
        caught = exc
    del body
    assert ref() is not None  # the traceback's frames hold it
    assert _error_text(caught) == ("bad request: bad message", 1008)
    assert ref() is None
