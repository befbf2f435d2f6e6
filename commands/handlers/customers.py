"""Customer commands: register, change."""

from __future__ import annotations

import uuid

from commands import models, repository
from commands.domain import Customer
from commands.events import CustomerEvents
from commands.execution import CommandContext, Outcome, accepted
from commands.handlers.steps import require_changes, unique_or_conflict
from shared.errors import Conflict, NotFound, known_id
from shared.money import to_cents
from shared.sql.db import Transaction


def register_customer(
    tx: Transaction, ctx: CommandContext, cmd: models.RegisterCustomer
) -> Outcome:
    # A self-service caller registers their own record, bound to their subject, once.
    if ctx.owner is not None and repository.owned_customer_id(tx, ctx.owner):
        raise Conflict("You have registered a customer record already.")
    customer = Customer.register(
        str(uuid.uuid4()),
        cmd.name,
        cmd.email,
        to_cents(cmd.creditLimit),
        owner_subject=ctx.owner,
    )
    with unique_or_conflict(f"A customer with email {cmd.email!r} already exists."):
        repository.insert_customer(tx, customer, ctx.now)
    return Outcome(
        accepted(f"/api/customers/{customer.id}", customer.id, 1),
        [CustomerEvents(ctx).registered(customer)],
    )


def change_customer(
    tx: Transaction, ctx: CommandContext, cmd: models.ChangeCustomer, customer_id: str
) -> Outcome:
    customer_id = known_id(customer_id, "Customer")
    current = repository.lock_customer(tx, customer_id)
    if current is None:
        raise NotFound(f"Customer {customer_id} does not exist.")
    ctx.check_owner(current.owner_subject, f"Customer {customer_id}")
    ctx.check_version(current.version)
    changes = require_changes(cmd)
    customer = current.change(
        name=cmd.name,
        email=cmd.email,
        credit_limit_cents=None
        if cmd.creditLimit is None
        else to_cents(cmd.creditLimit),
        self_service=ctx.owner is not None,
    )
    with unique_or_conflict(
        f"A customer with email {customer.email!r} already exists."
    ):
        repository.update_customer(tx, customer, ctx.now)
    return Outcome(
        accepted(f"/api/customers/{customer.id}", customer.id, customer.version),
        [CustomerEvents(ctx).changed(customer, list(changes))],
    )
