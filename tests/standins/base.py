"""A small base for stand-ins: real HTTP servers that play an external peer in tests.

A stand-in is an HTTP/1.1 server on 127.0.0.1 (ephemeral port) served from a daemon
thread. Subclasses register routes; the base reads and records every request, applies
the fault a test has set, then dispatches. Faults:

- ``ok``        answer normally (useful to exempt one route from a global fault)
- ``down``      read the request, then close the connection without any response
- ``hang``      wait ``seconds`` (default and cap: MAX_HANG_SECONDS) before answering;
                ``stop()`` releases it at once and the connection is closed unanswered
- ``slow``      wait ``seconds`` (default 1), then answer normally
- ``drip``      answer normally, but send the body a byte at a time, ``seconds`` (default
                1) apart: every read gets data before a read timeout, the whole never
                comes in time; ``stop()`` cuts it
- ``status``    answer ``status`` with the peer's error JSON (+ optional Retry-After)
- ``malformed`` answer 200 with a body that is not JSON

A fault is global or bound to a route pattern (``"/v1/chat/completions"``,
``"POST /api/v1/accounts/*/conversations/*/messages"``; ``*`` is a glob), and lasts
until cleared or, with ``times=N``, for the next N matching requests only.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_HANG_SECONDS = 30.0
FAULT_KINDS = ("ok", "down", "hang", "slow", "drip", "status", "malformed")
MALFORMED_BODY = b'{"id": "truncated-by-a-proxy", "choices": [{"mess'


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any  # the parsed JSON body, or None
    time: float  # time.monotonic() when the request had been read
    fault: str | None  # the fault applied to this request, if any


@dataclass
class Fault:
    kind: str
    seconds: float = 0.0
    status: int = 503
    retry_after: int | str | None = None
    body: bytes | None = None
    times: int | None = None  # applications left; None = until cleared


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or raw bytes
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., Response]


def route_matches(pattern: str, method: str, path: str) -> bool:
    """``"/path/*"`` matches any method; ``"POST /path/*"`` only POST."""
    wanted_method, _, wanted_path = pattern.rpartition(" ")
    if wanted_method and wanted_method.upper() != method:
        return False
    return fnmatch.fnmatchcase(path, wanted_path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver listens with a backlog of 5 (a real server's is hundreds): a client that
    # connects many times at once, as a health run does (two probes each for 8 connections),
    # would see SYNs dropped and retried a second later
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], standin: StandinServer) -> None:
        self.standin = standin
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request, client_address):
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        # Clients going away (timeouts, resets) is business as usual here.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        self.server.standin._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(chunks)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


class StandinServer:
    """Base class: routing, request log, faults, start/stop."""

    name = "standin"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._global_fault: Fault | None = None
        self._route_faults: list[tuple[str, Fault]] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> StandinServer:
        """Start serving. After a ``stop()`` it comes back on the same port (an outage)."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: hanging handlers are released and open connections cut."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stopping.set()
        server.shutdown()
        with server.connections_lock:
            open_connections = list(server.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        server.server_close()
        thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError(f"{self.name} has not been started")
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------
    def set_fault(
        self,
        kind: str,
        *,
        route: str | None = None,
        seconds: float | None = None,
        status: int = 503,
        retry_after: int | str | None = None,
        body: bytes | None = None,
        times: int | None = None,
    ) -> None:
        """Set a fault globally or for ``route``; ``times=N`` limits it to N requests."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        if seconds is None:
            seconds = MAX_HANG_SECONDS if kind == "hang" else 1.0
        fault = Fault(kind, min(seconds, MAX_HANG_SECONDS), status, retry_after, body, times)
        with self._lock:
            if route is None:
                self._global_fault = fault
            else:
                self._route_faults = [(p, f) for p, f in self._route_faults if p != route]
                self._route_faults.append((route, fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._global_fault = None
            self._route_faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for pattern, fault in reversed(self._route_faults):
                if route_matches(pattern, method, path):
                    return self._consume(fault, pattern)
            if self._global_fault is not None:
                return self._consume(self._global_fault, None)
            return None

    def _consume(self, fault: Fault, pattern: str | None) -> Fault | None:
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                if pattern is None:
                    self._global_fault = None
                else:
                    self._route_faults = [(p, f) for p, f in self._route_faults if f is not fault]
        return None if fault.kind == "ok" else fault

    # -- request log -----------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def requests_to(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if route_matches(route, r.method, r.path)]

    def wait_for_requests(
        self, route: str, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` requests matched ``route`` (for work done by workers)."""
        deadline = time.monotonic() + timeout
        while len(matched := self.requests_to(route)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(matched)}/{count} requests to {route} in {timeout}s")
            time.sleep(0.01)
        return matched

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        self.clear_faults()
        self.clear_requests()

    # -- for subclasses --------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` is a regex for the whole path; named groups become kwargs."""
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    def error_body(self, status: int, message: str | None = None) -> Any:
        """The peer's error JSON for ``status``; subclasses mirror their peer."""
        return {"error": message or "error"}

    def encode_json(self, body: Any) -> bytes:
        return json.dumps(body).encode()

    def not_found(self, request: RecordedRequest) -> Response:
        return Response(404, self.error_body(404))

    # -- serving ---------------------------------------------------------------------
    def _serve(self, handler: _RequestHandler) -> None:
        body = _read_body(handler)
        path, _, query = handler.path.partition("?")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        fault = self._take_fault(handler.command, path)
        request = RecordedRequest(
            method=handler.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            json=parsed,
            time=time.monotonic(),
            fault=fault.kind if fault else None,
        )
        with self._lock:
            self._requests.append(request)

        if fault is not None:
            if fault.kind == "down":
                handler.close_connection = True
                return
            if fault.kind in ("hang", "slow") and self._stopping.wait(fault.seconds):
                handler.close_connection = True  # stopped while waiting: never answer
                return
            if fault.kind == "status":
                headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
                error = fault.body if fault.body is not None else self.error_body(fault.status)
                self._send(handler, Response(fault.status, error, headers))
                return
            if fault.kind == "malformed":
                malformed = fault.body if fault.body is not None else MALFORMED_BODY
                self._send(handler, Response(200, malformed))
                return
            if fault.kind == "drip":
                self._send(handler, self._dispatch(request), drip_seconds=fault.seconds)
                return
        self._send(handler, self._dispatch(request))

    def _dispatch(self, request: RecordedRequest) -> Response:
        for method, pattern, route_handler in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                try:
                    return route_handler(request, **match.groupdict())
                except Exception:
                    traceback.print_exc()  # a bug in the stand-in: show it, answer 500
                    return Response(500, self.error_body(500))
        return self.not_found(request)

    def _send(
        self, handler: _RequestHandler, response: Response, *, drip_seconds: float = 0.0
    ) -> None:
        headers = {str(k): str(v) for k, v in response.headers.items()}
        if isinstance(response.body, bytes):
            payload = response.body
            headers.setdefault("Content-Type", "application/json")
        elif response.body is None:
            payload = b""
        else:
            payload = self.encode_json(response.body)
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        handler.send_response(response.status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if not drip_seconds:
            handler.wfile.write(payload)
            return
        for offset in range(len(payload)):
            handler.wfile.write(payload[offset : offset + 1])
            handler.wfile.flush()
            if self._stopping.wait(drip_seconds):
                handler.close_connection = True
                return
