"""`sweepd dashboard`: the standard library's ThreadingHTTPServer serving the bundled page
(static/: hand-written HTML, JS and SVG charts, no CDN: boxes may have no internet) and the JSON API.

Routes (GET only; the dashboard never writes):
  /                                 the page (hash routes: #/, #/sweep/ID, #/sweep/ID/trial/N, #/boxes)
  /static/NAME                      bundled assets
  /api/sweeps                       sweeps list
  /api/sweeps/{id}                  one sweep's summary, settings, params, version
  /api/sweeps/{id}/trials           its trials (no curves)
  /api/sweeps/{id}/trials/{n}       one trial with its learning curve
  /api/sweeps/{id}/front            its seed-averaged Pareto front
  /api/boxes                        boxes, slot holders, reservations

Why no web framework: a handful of GET routes over a read-only engine is ~100 lines here, and a
dependency-free dashboard installs on any box the agents run on.
"""

from __future__ import annotations

import errno
import gzip
import ipaddress
import json
import re
import socket
import sys
import traceback
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy.exc import OperationalError, ProgrammingError

from sweepd.dashboard.api import Api
from sweepd.store.db import make_engine
from sweepd.store.sweeps import NotFound

STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".ico": "image/x-icon"}
GZIP_MIN_BYTES = 32_768  # compress big JSON (a 10,000-trial table is ~3 MB) when the client accepts it

Route = tuple[re.Pattern[str], Callable[[Api, re.Match[str]], Any]]
ROUTES: list[Route] = [
    (re.compile(r"/api/sweeps"), lambda api, m: api.sweeps()),
    (re.compile(r"/api/sweeps/([^/]+)"), lambda api, m: api.sweep(m[1])),
    (re.compile(r"/api/sweeps/([^/]+)/trials"), lambda api, m: api.trials(m[1])),
    (re.compile(r"/api/sweeps/([^/]+)/trials/([0-9]+)"), lambda api, m: api.trial(m[1], m[2])),
    (re.compile(r"/api/sweeps/([^/]+)/front"), lambda api, m: api.front(m[1])),
    (re.compile(r"/api/boxes"), lambda api, m: api.boxes()),
]


class ServeError(Exception):
    """The dashboard cannot listen where it was asked to (port in use, no such address, ...)."""


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DashboardServer(ThreadingHTTPServer):
    """One thread per request; the threads are daemons so Ctrl-C never waits for a slow client."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: Api, quiet: bool = True) -> None:
        self.api, self.quiet = api, quiet
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path).rstrip("/") or "/"
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path.removeprefix("/static/"))
        for pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match:
                return self._api(handler, match)
        return self._json({"error": f"no route {path}"}, HTTPStatus.NOT_FOUND)

    def _api(self, handler: Callable[[Api, re.Match[str]], Any], match: re.Match[str]) -> None:
        try:
            data = handler(self.server.api, match)
        except NotFound as exc:
            return self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
        except (OperationalError, ProgrammingError) as exc:
            # An empty or unreachable database: say so on the page instead of a stack trace.
            first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            return self._json({"error": f"database not readable: {first}"}, HTTPStatus.SERVICE_UNAVAILABLE)
        except Exception as exc:
            # A bug: its traceback goes to the dashboard's stderr, and the page still gets JSON,
            # not a connection closed without a reply.
            traceback.print_exc(file=sys.stderr)
            return self._json({"error": f"internal error: {type(exc).__name__}; the traceback is in the "
                                        "dashboard's log"}, HTTPStatus.INTERNAL_SERVER_ERROR)
        return self._json(data)

    def _static(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):  # no paths outside static/
            return self._json({"error": "not found"}, HTTPStatus.NOT_FOUND)
        asset = resources.files("sweepd.dashboard").joinpath("static", name)
        if not asset.is_file():
            return self._json({"error": f"no asset {name}"}, HTTPStatus.NOT_FOUND)
        suffix = name[name.rfind("."):]
        self._send(asset.read_bytes(), STATIC_TYPES.get(suffix, "application/octet-stream"), HTTPStatus.OK)

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(data, separators=(",", ":"), default=str).encode()
        self._send(body, "application/json", status)

    def _send(self, body: bytes, content_type: str, status: HTTPStatus) -> None:
        gzipped = len(body) >= GZIP_MIN_BYTES and "gzip" in self.headers.get("Accept-Encoding", "")
        if gzipped:
            body = gzip.compress(body, compresslevel=1)  # fast: the point is fewer bytes on a remote link
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")  # always the database's current state
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(db_url: str | None = None, host: str = "127.0.0.1", port: int = 8765,
                quiet: bool = True) -> DashboardServer:
    """A dashboard server bound to (host, port) over a read-only engine; call `serve_forever()`.

    Raises ServeError, in one line with the fix, when it cannot bind."""
    if not 0 <= port <= 65535:
        raise ServeError(f"port {port} is not a TCP port: use 0..65535 (0: any free port)")
    api = Api(make_engine(db_url, read_only=True))
    try:
        return DashboardServer((host, port), api, quiet=quiet)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(f"port {port} is in use; try --port 0 (any free port)") from exc
        if exc.errno == errno.EACCES:
            raise ServeError(f"no permission to serve on port {port}; try a port above 1023, or --port 0") from exc
        raise ServeError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
