"""uvicorn, with the two limits an inference server reachable from a network needs and uvicorn lacks.

- **Request read timeouts** (HTTP): a connection must deliver a request's headers within
  `HEADER_TIMEOUT_S` of opening (or of its previous response), and once in the body it may not go
  `BODY_IDLE_TIMEOUT_S` without a byte. uvicorn arms its keep-alive timer only between requests, so a
  client that opens a connection and sends half a request line (or drip-feeds one) holds a socket and
  a file descriptor forever: a thousand such clients exhaust a server bound beyond loopback.
- **A clean 1009 close for an oversized websocket message**: the websocket layer refuses a frame
  larger than the limit from its header, before buffering it, and queues a close frame with code 1009
  ("message too big"); uvicorn then closes the TCP connection at once, and a client still sending its
  large frame gets a reset that discards that close frame, so it sees a dropped connection instead of
  the reason. Here the server half-closes, reads and discards what the client is still sending (the
  websocket protocol's own rule after a failure) for at most `DRAIN_TIMEOUT_S`, then closes.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

HEADER_TIMEOUT_S = 10.0
BODY_IDLE_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 5.0


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the request read timeouts above."""

    header_timeout = HEADER_TIMEOUT_S
    body_idle_timeout = BODY_IDLE_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.get_protocol() is not self:  # upgraded to a websocket: its own rules apply
            self._disarm()
        elif self.conn.their_state is h11.SEND_BODY:  # headers in, body coming: idle limit per byte
            self._arm(self.body_idle_timeout)
        elif self.conn.their_state is not h11.IDLE:  # the whole request is in
            self._disarm()
        # IDLE: the headers are still incomplete; the deadline set when waiting began stands

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.header_timeout)  # the next request's headers get the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            # A request still arriving: drop the connection (an app waiting for the body sees the
            # client as disconnected). Between requests uvicorn's keep-alive timer does the same.
            self.transport.close()


class DrainingWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol that delivers its close frame after a failure."""

    drain_timeout = DRAIN_TIMEOUT_S

    def handle_parser_exception(self) -> None:
        if getattr(self, "_draining", False):
            return
        self._draining = True
        assert self.conn.close_sent is not None
        close = self.conn.close_sent
        self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
        output = self.conn.data_to_send()
        self.transport.write(b"".join(output))
        self.close_sent = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # our side is done; keep reading (and discarding) theirs
        # As `close_timer`, uvicorn's own: the app's task, ending now, then leaves the closing to it.
        self.close_timer = self.loop.call_later(self.drain_timeout, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if getattr(self, "_draining", False):
            return  # the rest of a refused message: discarded
        super().data_received(data)

    def eof_received(self) -> bool | None:
        if getattr(self, "_draining", False):
            self.transport.close()  # the client is done too (connection_lost cancels the timer)
            return None
        return super().eof_received()


def uvicorn_config(app, host: str, port: int, max_message_bytes: int, log_level: str = "info"):
    """The uvicorn configuration `embodia serve` runs with."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=TimedH11Protocol,
        ws=DrainingWebSocketProtocol,
        # Refused by the websocket layer before the message is assembled in memory (close code 1009).
        ws_max_size=max_message_bytes,
        # Images are already compact binary; deflate would cost CPU on every frame for little gain.
        ws_per_message_deflate=False,
        log_level=log_level,
        lifespan="off",
    )
