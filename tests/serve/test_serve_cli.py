"""The server stays responsive while it computes, survives clients that vanish, and `embodia serve`
runs as a command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from serve_helpers import make_obs
from websockets.sync.client import connect

from embodia.serve.client import Client
from embodia.serve.protocol import packb, unpackb
from embodia.serve.server import running_server


class SlowPolicy:
    """The tiny policy with a 1.5 s inference, to catch a blocked event loop."""

    def __init__(self, policy, seconds=1.5):
        self._policy, self._seconds = policy, seconds

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def predict_chunk(self, *args, **kwargs):
        time.sleep(self._seconds)
        return self._policy.predict_chunk(*args, **kwargs)


def test_event_loop_answers_while_inference_runs(tiny_policy):
    with running_server(SlowPolicy(tiny_policy)) as url:
        client = Client(url)
        obs = make_obs(client.metadata["observation"])
        worker = threading.Thread(target=client.act, args=(obs,))
        worker.start()
        time.sleep(0.3)  # the request is now inside predict_chunk
        t0 = time.perf_counter()
        with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=10) as resp:
            assert resp.status == 200
        with connect(url) as other:
            assert unpackb(other.recv())["chunk_size"] == 8  # a new connection gets its metadata
        assert time.perf_counter() - t0 < 1.0
        assert worker.is_alive()
        worker.join()


def test_a_client_vanishing_mid_request_does_not_hurt_the_server(tiny_policy):
    with running_server(SlowPolicy(tiny_policy, 0.5)) as url:
        client = Client(url)
        obs = make_obs(client.metadata["observation"])
        with connect(url) as ws:
            ws.recv()
            ws.send(packb(obs))
        # closed before the reply came; the server must carry on
        time.sleep(0.8)
        assert client.act(obs).shape == (8, 6)


def test_serve_without_the_shipped_base_says_what_to_do(monkeypatch, tmp_path, capsys):
    from embodia.cli import main
    from embodia.policy.checkpoint import SHIPPED_POLICIES

    monkeypatch.setitem(SHIPPED_POLICIES, "base", tmp_path / "missing")
    assert main(["serve"]) == 2
    out = " ".join(capsys.readouterr().out.split()).lower()  # rich wraps lines
    assert "base checkpoint is missing" in out and "pass a checkpoint folder" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_embodia_serve_command(tiny_policy_dir):
    port = _free_port()
    env = dict(os.environ, EMBODIA_API_KEY="k3y")
    cmd = [
        sys.executable,
        "-m",
        "embodia.cli",
        "serve",
        str(tiny_policy_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                client = Client(f"ws://127.0.0.1:{port}", api_key="k3y")
                break
            except ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.communicate()[0].decode()) from None
                time.sleep(0.5)
        assert client.metadata["checkpoint"]["path"] == str(tiny_policy_dir)
        actions = client.act(make_obs(client.metadata["observation"]))
        assert actions.shape == (8, 6) and np.all(np.isfinite(actions))
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_bad_port_is_a_usage_error_not_a_traceback(port, capsys):
    from embodia.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", port])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "TCP port (0-65535)" in err and "Traceback" not in err


def test_a_port_in_use_is_said_plainly(tiny_policy_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "embodia.cli", "serve", tiny_policy_dir, "--port", str(port)],
            capture_output=True, text=True, timeout=300, env={**os.environ, "MUJOCO_GL": "egl"},
        )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "address already in use" in out.lower() and "Traceback" not in out
