"""Session fixtures for the local stack (Azurite + Cosmos stand-in) and the dev host.

Fixtures are lazy: a test that asks for none of them starts nothing. Everything runs on
free ports in a temporary state dir, so a `make run` on the same machine is not disturbed.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from devtools.host_process import DevHost
from devtools.stack import LocalStack

HTTP_TIMEOUT = 30.0
STACK_FIXTURES = {"local_stack", "devhost", "http"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests using the stack get the `stack` marker, so `-m "not stack"` runs the rest alone.
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Azurite and the Cosmos stand-in, started and provisioned; `.settings` has the app settings."""
    stack = LocalStack(tmp_path_factory.mktemp("stack"), fixed_ports=False)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def devhost(local_stack: LocalStack) -> Iterator[DevHost]:
    """The dev host on a free port: `.base_url`, `.kill()`, `.restart()`, `.start()`, `.tail()`.

    A test that kills it must bring it back (`restart()` or `start()`) before it ends:
    the instance is shared by the whole session.
    """
    host = local_stack.start_devhost()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="session")
def http(local_stack: LocalStack, devhost: DevHost) -> Iterator[httpx.Client]:
    """An HTTP client for the API: relative URLs such as `/orders/{id}` go to `<host>/api`.

    It sends an `Orders.Admin` token of the development issuer; tests of other roles
    build their own headers with `local_stack.token(roles, subject)`."""
    with httpx.Client(
        base_url=devhost.base_url + "/api",
        timeout=HTTP_TIMEOUT,
        headers={"Authorization": f"Bearer {local_stack.token()}"},
    ) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> pytest.TestReport:
    # A failing test that used the dev host gets the host's last log lines in its report.
    report: pytest.TestReport = yield
    host = getattr(item, "funcargs", {}).get("devhost")
    if report.failed and isinstance(host, DevHost):
        report.sections.append(("dev host log (last 60 lines)", host.tail(60)))
    return report
