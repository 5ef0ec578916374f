"""A small HTTP proxy in front of a local peer (localstripe, anvil) that misbehaves on demand.

``FaultProxy(target, delay=..)`` forwards every request and holds the answer back ``delay``
seconds, so the request reaches the peer (the object is made) but a client with a shorter
timeout gives up first. ``fail_next(n, status, forward=...)`` answers the next ``n`` requests
with ``status``: with ``forward=True`` after the peer did the work (the answer is lost), with
``forward=False`` without reaching the peer at all; ``method="POST"`` lets other requests
(reads) through untouched. ``requests`` counts what came in.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultProxy:
    def __init__(self, target: str, delay: float = 0.0) -> None:
        self.target = target.rstrip("/")
        self.delay = delay
        self.release = threading.Event()
        self.requests = 0
        self._failures: list[tuple[int, bool, str | None]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy._lock:
                    proxy.requests += 1
                    fault = next((f for f in proxy._failures if f[2] in (None, self.command)), None)
                    if fault is not None:
                        proxy._failures.remove(fault)
                if fault is None or fault[1]:
                    request = urllib.request.Request(
                        proxy.target + self.path,
                        data=body,
                        method=self.command,
                        headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                    )
                    try:
                        with urllib.request.urlopen(request, timeout=30) as answer:
                            status, payload = answer.status, answer.read()
                    except urllib.error.HTTPError as exc:
                        status, payload = exc.code, exc.read()
                if fault is not None:
                    status = fault[0]
                    payload = b'{"error": {"type": "api_error", "message": "proxy fault"}}'
                if proxy.delay:
                    proxy.release.wait(proxy.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up long ago

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail_next(
        self, count: int, status: int = 500, *, forward: bool = False, method: str | None = None
    ) -> None:
        with self._lock:
            self._failures.extend([(status, forward, method)] * count)

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
