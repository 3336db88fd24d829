"""The transport limits uvicorn lacks (serve/transport.py): request read timeouts, and a 1009 close a
client still sending its oversized message actually receives; plus quiet logs on client disconnects."""

from __future__ import annotations

import http.client
import logging
import socket
import time

import numpy as np
import pytest
from serve_helpers import make_obs
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from embodia.serve.client import Client
from embodia.serve.protocol import packb
from embodia.serve.server import running_server
from embodia.serve.transport import TimedH11Protocol


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True


@pytest.fixture
def short_timeouts(monkeypatch):
    monkeypatch.setattr(TimedH11Protocol, "header_timeout", 0.5)
    monkeypatch.setattr(TimedH11Protocol, "body_idle_timeout", 0.5)


def test_unfinished_headers_and_stalled_bodies_time_out(tiny_policy, short_timeouts):
    with running_server(tiny_policy) as url:
        port = _port(url)
        silent = socket.create_connection(("127.0.0.1", port))  # never sends a byte
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        drip = socket.create_connection(("127.0.0.1", port))
        drip.sendall(b"GET /healthz HTTP/1.1\r\n")
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                        b"Content-Length: 1000\r\n\r\n" + b"\x00" * 10)  # fmt: skip
        for _ in range(3):  # a byte every 0.3 s does not extend the header deadline
            time.sleep(0.3)
            try:
                drip.sendall(b"X")
            except OSError:
                break
        for sock in (silent, half, drip, stalled):
            assert _closed_by_server(sock, within=3.0)
            sock.close()
        # A complete request on a fresh connection is served as usual, and keep-alive still works.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(2):
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b'{"status":"ok","ready":true}'
        conn.close()


def test_a_client_still_sending_an_oversized_message_receives_the_1009_close(tiny_policy):
    limit = 64 * 1024
    with running_server(tiny_policy, max_message_bytes=limit) as url:
        client = Client(url)
        obs = make_obs(client.metadata["observation"])
        with connect(url, max_size=None) as ws:
            ws.recv()
            # 128x the limit: the close frame arrives while the client is still sending (send raises).
            with pytest.raises(ConnectionClosed) as closed:
                ws.send(packb(obs | {"padding": np.zeros(8 * 1024 * 1024, np.uint8)}))
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert client.act(obs).shape == (8, 6)  # the server goes on


def test_a_client_leaving_mid_body_logs_no_traceback(tiny_policy, caplog):
    uvicorn_log = logging.getLogger("uvicorn.error")  # uvicorn's loggers do not propagate to the root
    uvicorn_log.addHandler(caplog.handler)
    with running_server(tiny_policy) as url, caplog.at_level(logging.INFO, logger="uvicorn.error"):
        with socket.create_connection(("127.0.0.1", _port(url))) as s:
            s.sendall(b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"\x00" * 1000)  # fmt: skip
        time.sleep(0.5)
        client = Client(url)
        assert client.act(make_obs(client.metadata["observation"])).shape == (8, 6)
    uvicorn_log.removeHandler(caplog.handler)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
