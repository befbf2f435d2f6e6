"""The Cosmos DB client of a worker process and the read-model containers.

Container names and partition keys come from shared/topology.json, the same
file Bicep provisions from. In Azure the client authenticates with the managed
identity (data-plane RBAC, local auth disabled); a key is used only for the
local emulators.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from functools import cache
from typing import Any

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.cosmos import ContainerProxy, CosmosClient, DatabaseProxy, PartitionKey
from urllib3.util.retry import Retry

from shared import config

# Request paths (queries, status) must answer within seconds, so a slow or frozen Cosmos
# DB becomes a 503 instead of a hang: short connect/read timeouts, an absolute cap per call, and
# a short wait on throttling. The projections can afford the SDK's patient defaults.
REQUEST_PATH_OPTIONS: dict[str, Any] = {
    "connection_timeout": 3,
    "read_timeout": 2,
    # One more try on a dropped or silent connection; throttling keeps its own budget.
    "retry_total": 1,
    "retry_connect": 1,
    "retry_read": 1,
    "retry_throttle_total": 3,
    "retry_throttle_backoff_max": 3,
}
# The SDK applies an absolute timeout per operation, not from the client's options:
# request paths pass this to every call.
REQUEST_TIMEOUT_SECONDS = 6


# Variables requests would take from the environment: proxies (http_proxy, no_proxy, ...)
# and CA bundles.
REQUESTS_ENVIRONMENT = ("proxy", "requests_ca_bundle", "curl_ca_bundle")


# Threads that may share a client at once: an instance's partition readers (up to 32)
# and the writer's two pools (sync/cosmos_writer.py). Connections open only on demand.
CONNECTION_POOL_SIZE = 64


class _SdkSession(requests.Session):
    """A session that sends azure-core's requests without what the SDK never uses.

    Besides the request itself, `Session.request` merges cookies, hooks, auth, proxies
    and environment settings and readies redirects, on every request and in Python. The
    SDK follows no redirects (azure-core passes allow_redirects=False and retries in its
    own policies) and sends no cookies, auth or proxies through requests; this session
    keeps the environment out unless it holds proxy or CA settings (then `trust_env` is
    on). So the request is prepared as requests would prepare it, with the session's
    headers, and handed to the same adapter. A request or session that uses any of the
    skipped features takes requests' own full path.
    """

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        if (
            self.trust_env
            or allow_redirects
            or any((params, cookies, files, auth, proxies, hooks))
            or json is not None
            or any((self.params, self.cookies, self.auth, self.proxies))
            or any(self.hooks.values())
            or (headers is not None and None in headers.values())
        ):
            return super().request(
                method, url, params, data, headers, cookies, files, auth, timeout,
                allow_redirects, proxies, hooks, stream, verify, cert, json,
            )  # fmt: skip
        prepared = requests.PreparedRequest()
        prepared.prepare_method(method)
        prepared.prepare_url(url, None)
        prepared.prepare_headers(headers)
        # The session's default headers, as requests adds them.
        for name, value in self.headers.items():
            if name not in prepared.headers:
                prepared.headers[name] = value
        prepared.prepare_body(data, None)
        prepared.prepare_auth(None, url)  # credentials in the URL, as requests does
        stream = self.stream if stream is None else stream
        started = time.perf_counter()
        response = self.get_adapter(prepared.url or url).send(
            prepared,
            stream=stream,
            timeout=timeout,
            verify=self.verify if verify is None else verify,
            cert=self.cert if cert is None else cert,
            proxies={},
        )
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if not stream:
            response.content  # noqa: B018 - read the body now, as Session.send does
        return response


def _transport() -> RequestsTransport:
    """The HTTP transport.

    Its own session, because azure-core's keeps 10 connections per host: with more
    threads than that, every request past the tenth closed its connection after use
    and the next one paid a new TLS handshake. And allowed to, requests scans the whole
    environment on every request (a Function App's settings are environment variables:
    about a quarter of a projection's client CPU); it does so only when the
    environment holds something it would use (requests and urllib skip empty values).
    """
    used = any(
        value and name.lower().endswith(REQUESTS_ENVIRONMENT)
        for name, value in os.environ.items()
    )
    session = _SdkSession()
    session.trust_env = used
    # As azure-core mounts its own: its retry policies retry, urllib3 must not.
    adapter = requests.adapters.HTTPAdapter(
        pool_maxsize=CONNECTION_POOL_SIZE,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(session=session, use_env_settings=used)


def _new_client(**options: Any) -> CosmosClient:
    endpoint = config.require("COSMOS_ENDPOINT")
    if key := config.get("COSMOS_KEY"):
        credential: Any = key
    else:
        from shared.identity import credential as entra_credential

        credential = entra_credential()
    return CosmosClient(
        endpoint,
        credential=credential,
        connection_verify=config.get_bool("COSMOS_VERIFY_TLS"),
        transport=_transport(),
        **options,
    )


@cache
def client() -> CosmosClient:
    """The client of request paths (bounded latency)."""
    return _new_client(**REQUEST_PATH_OPTIONS)


@cache
def sync_client() -> CosmosClient:
    """The client of the projections, rebuilds and redrives (the SDK's retries)."""
    return _new_client()


def database() -> DatabaseProxy:
    return client().get_database_client(config.require("COSMOS_DATABASE"))


def _declared(name: str) -> str:
    if name not in container_specs():
        raise KeyError(f"container {name!r} is not declared in shared/topology.json")
    return name


@cache
def container(name: str) -> ContainerProxy:
    """A container for request paths."""
    return database().get_container_client(_declared(name))


@cache
def sync_container(name: str) -> ContainerProxy:
    """A container for the projections' writes."""
    return (
        sync_client()
        .get_database_client(config.require("COSMOS_DATABASE"))
        .get_container_client(_declared(name))
    )


def clear_caches() -> None:
    """Forget clients (a process that switches settings, such as the local provisioner)."""
    for cached in (client, sync_client, container, sync_container):
        cached.cache_clear()


def container_specs() -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config.topology()["cosmos"]["containers"]}


def ensure_containers() -> None:
    """Create the database and containers if absent (local stacks; Bicep does it in Azure)."""
    db = client().create_database_if_not_exists(config.require("COSMOS_DATABASE"))
    for spec in container_specs().values():
        db.create_container_if_not_exists(
            id=spec["name"],
            partition_key=PartitionKey(path=spec["partitionKey"]),
            indexing_policy=spec.get("indexingPolicy"),
        )
