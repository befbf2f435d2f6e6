"""The Cosmos DB client's HTTP session: azure-core's requests sent the short way, with the
same request on the wire, the same response and the same errors."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from unittest import mock

import pytest
import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseTimeoutError
from azure.core.pipeline.transport import HttpRequest

from shared.cosmos import _transport


class Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.seen.append((self.command, self.path, dict(self.headers), body))
        if self.path.startswith("/slow"):
            threading.Event().wait(2)
        if self.path.startswith("/moved"):
            self.send_response(307)
            self.send_header("Location", "/landed")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"id": "a"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("etag", '"e1"')
        self.send_header("Set-Cookie", "affinity=1; Path=/")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def transport():  # type: ignore[no-untyped-def]
    with mock.patch.dict(os.environ, {}, clear=True):
        return _transport()


def test_a_request_goes_out_as_sent_and_its_answer_comes_back_whole(
    server: str, transport
) -> None:
    request = HttpRequest(
        "POST",
        f"{server}/dbs/d/colls/c/docs?x=1",
        headers={
            "x-ms-documentdb-partitionkey": '["p"]',
            "Content-Type": "application/json",
        },
        data=b'{"id": "a"}',
    )
    response = transport.send(request, connection_timeout=2, read_timeout=2)

    method, path, headers, body = Recorder.seen[-1]
    assert (method, path, body) == ("POST", "/dbs/d/colls/c/docs?x=1", b'{"id": "a"}')
    assert headers["x-ms-documentdb-partitionkey"] == '["p"]'
    assert headers["Content-Length"] == "11"
    assert "Cookie" not in headers
    # Byte for byte what requests' own path sends (its default headers included).
    with requests.Session() as plain:
        plain.request(
            "POST",
            request.url,
            headers=request.headers,
            data=request.data,
            allow_redirects=False,
        )
    assert Recorder.seen[-1] == (method, path, headers, body)
    assert response.status_code == 201
    assert response.headers["ETag"] == '"e1"'  # case-insensitive, as the SDK reads them
    assert response.body() == b'{"id": "a"}'
    assert response.internal_response.elapsed.total_seconds() > 0
    # The short way keeps no cookies, as the SDK sends none.
    assert not transport.session.cookies


def test_a_redirect_comes_back_to_the_sdk_unfollowed(server: str, transport) -> None:
    response = transport.send(HttpRequest("GET", f"{server}/moved"))
    assert response.status_code == 307
    assert [path for _, path, _, _ in Recorder.seen] == ["/moved"]


def test_what_the_short_way_skips_still_works_through_requests(
    server: str, transport
) -> None:
    # Redirects followed, cookies kept: requests' own path, for a caller that asks.
    response = transport.session.request("GET", f"{server}/moved", allow_redirects=True)
    assert response.status_code == 201
    assert [path for _, path, _, _ in Recorder.seen] == ["/moved", "/landed"]
    assert transport.session.cookies.get("affinity") == "1"


def test_timeouts_and_refusals_map_to_azure_core_errors(server: str, transport) -> None:
    with pytest.raises(ServiceResponseTimeoutError):
        transport.send(HttpRequest("GET", f"{server}/slow"), read_timeout=0.3)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    with pytest.raises(ServiceRequestError):
        transport.send(HttpRequest("GET", f"http://127.0.0.1:{closed}/"))
