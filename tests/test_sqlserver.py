"""The Azure SQL path: pyodbc with Microsoft ODBC Driver 18 (from PyPI: mssql-python-odbc).

Without a SQL Server, the driver is still loaded for real and its errors classified;
the contract tests run the commands on a real SQL Server when SQL_CONNECTION_STRING points
at one, and are skipped (visibly, with the reason) otherwise.
"""

from __future__ import annotations

import ctypes.util
import os
import struct
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from shared.sql.db import (
    Database,
    _pyodbc_connect,
    _token_struct,
    azure_sql_connection_string,
    is_transient_pyodbc_error,
)

HAS_UNIXODBC = ctypes.util.find_library("odbc") is not None
needs_unixodbc = pytest.mark.skipif(
    not HAS_UNIXODBC, reason="unixODBC (libodbc.so.2) is not installed"
)
SQL_CONNECTION_STRING = os.environ.get("SQL_CONNECTION_STRING")
needs_sql_server = pytest.mark.skipif(
    not SQL_CONNECTION_STRING,
    reason="set SQL_CONNECTION_STRING to a SQL Server to run the contract tests",
)


def driver_path() -> str:
    import mssql_python_odbc

    lib = (
        Path(mssql_python_odbc.__file__).parent
        / "libs"
        / "linux"
        / "debian_ubuntu"
        / "x86_64"
        / "lib"
    )
    return str(next(lib.glob("libmsodbcsql-18*.so*")))


def test_access_token_is_packed_as_the_driver_expects():
    # msodbcsql: a little-endian 4-byte length, then the token in UTF-16-LE.
    packed = _token_struct("eyJ0")
    assert (
        packed[:4] == struct.pack("<I", 8) and packed[4:].decode("utf-16-le") == "eyJ0"
    )


def test_azure_sql_connection_string_encrypts_and_names_the_driver():
    text = azure_sql_connection_string(
        "srv.database.windows.net", "orders", "ODBC Driver 18 for SQL Server"
    )
    assert text.startswith(
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:srv.database.windows.net,1433;"
    )
    assert (
        "Database=orders;" in text
        and "Encrypt=yes;" in text
        and "TrustServerCertificate=no" in text
    )
    assert "Pwd" not in text and "Uid" not in text


@needs_unixodbc
def test_driver_18_loads_and_an_unreachable_server_is_a_transient_error():
    import pyodbc

    connect = _pyodbc_connect(
        f"Driver={{{driver_path()}}};Server=tcp:127.0.0.1,1;Database=x;Encrypt=yes;Connection Timeout=1",
        use_token=False,
        login_timeout=1,
    )
    with pytest.raises(pyodbc.Error) as caught:
        connect()
    message = str(caught.value)
    assert "ODBC Driver 18 for SQL Server" in message, (
        message
    )  # the real driver answered
    assert is_transient_pyodbc_error(caught.value)


@pytest.mark.parametrize(
    ("args", "transient"),
    [
        (
            (
                "40613",
                "[40613] Database 'orders' on server is not currently available. (40613)",
            ),
            True,
        ),
        (
            (
                "42000",
                "[42000] Transaction (Process ID 53) was deadlocked (1205) (SQLExecDirectW)",
            ),
            True,
        ),
        (("08S01", "[08S01] Communication link failure"), True),
        (("23000", "[23000] Violation of UNIQUE KEY constraint (2627)"), False),
        (("42S02", "[42S02] Invalid object name 'nope'. (208)"), False),
    ],
)
def test_transient_sql_error_classification(args, transient):
    assert is_transient_pyodbc_error(Exception(*args)) is transient


@pytest.fixture(scope="module")
def sql_server() -> Database:
    from shared.sql.migrate import apply_migrations

    db = Database(_pyodbc_connect(SQL_CONNECTION_STRING, use_token=False), "tsql")
    apply_migrations(db)
    return db


@needs_sql_server
def test_migrations_are_idempotent_on_sql_server(sql_server):
    from shared.sql.migrate import apply_migrations

    assert apply_migrations(sql_server) == []


@needs_sql_server
def test_commands_on_sql_server(sql_server, tmp_path):
    from commands import handlers, models
    from commands.functions import run_command as execute
    from shared.http import Request
    from shared.publisher import LocalLogPublisher

    publisher = LocalLogPublisher(str(tmp_path / "events.db"), 4)

    def run(handler, body, **route):
        request = Request("POST", {}, {}, {}, "sqlserver", body=body)
        return execute(
            request,
            handler.__name__,
            lambda tx, ctx: handler(tx, ctx, body, **route),
            db=sql_server,
            events_to=publisher,
        )

    c = run(
        handlers.register_customer,
        models.RegisterCustomer(
            name="Ada",
            email=f"{uuid.uuid4().hex}@example.com",
            creditLimit=Decimal(1000),
        ),
    ).body
    p = run(
        handlers.create_product,
        models.CreateProduct(
            sku=uuid.uuid4().hex[:12], name="Widget", price=Decimal("1.00"), stock=10
        ),
    ).body
    place = models.PlaceOrder(
        customerId=c["id"],
        items=[models.OrderLineRequest(productId=p["id"], quantity=1)],
        shippingAddress=models.Address(
            street="s", city="c", state="s", postalCode="p", country="US"
        ),
    )

    def attempt(_):
        try:
            return run(handlers.place_order, place).status
        except Exception as exc:  # noqa: BLE001 - the refusals are counted below
            return getattr(exc, "status", 500)

    with ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(attempt, range(25)))
    assert statuses.count(202) == 10 and statuses.count(409) == 15, statuses
    stock = sql_server.run(
        lambda tx: tx.one("SELECT stock FROM products WHERE id = ?", (p["id"],))[0]
    )
    assert stock == 0
