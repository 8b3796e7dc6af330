"""The firewall layer: one model of chains and rules, iptables backends behind it.

Callers build ``Rule`` objects (canonical iptables-save tokens), then change a table in one
transaction with ``transact(backend, table, fn)``: the table is read, ``fn`` records the
needed operations on a ``Plan`` (idempotent against the snapshot) and the plan is applied in
one ``iptables-restore`` run or one libiptc commit (none when the plan ends where the
snapshot was). A lost race is retried from a new snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .backends import Backend, FirewallError, RestoreBackend, TableUnavailable, tables_present
from .detect import CONFIG_KEY, ENV, choose, requested, teardown_backends
from .model import Op, Plan, Rule, Scope, TableState, parse_save, quote, tokenize
from .names import format_chain_name, format_hash

T = TypeVar("T")

__all__ = [
    "CONFIG_KEY",
    "ENV",
    "Backend",
    "FirewallError",
    "Op",
    "Plan",
    "RestoreBackend",
    "Rule",
    "Scope",
    "TableState",
    "TableUnavailable",
    "choose",
    "format_chain_name",
    "format_hash",
    "parse_save",
    "quote",
    "requested",
    "tables_present",
    "teardown_backends",
    "tokenize",
    "transact",
    "transact_new",
]


def transact(
    backend: Backend,
    table: str,
    fn: Callable[[Plan], T],
    retries: int = 2,
    scope: Scope | None = None,
    narrow: Scope | None = None,
) -> T:
    """Read ``table`` (only ``scope`` when given), let ``fn`` plan changes, apply them as
    one transaction.

    ``narrow``: a chain-by-chain read to try first (exec backends only; libiptc reads the
    table in process). When what it leaves unknown matters -- the plan is empty while it
    assumed chains absent, or the commit fails -- the transaction is redone on ``scope``.
    """
    attempt = 0
    current = narrow if narrow is not None and hasattr(backend, "list_chain") else scope
    while True:
        with backend.locked():
            try:
                snapshot = (
                    backend.load(table) if current is None else backend.load(table, scope=current)
                )
            except TableUnavailable:
                raise
            except FirewallError as e:
                raise TableUnavailable(str(e)) from e
            plan = Plan(snapshot)
            out = fn(plan)
            if (
                plan.ops
                and plan.state.chains == snapshot.chains
                and plan.state.unread == snapshot.unread
            ):
                # e.g. a repeated ADD that rebuilds a chain rule for rule: nothing to write
                # (and the counters stay)
                plan.ops.clear()
            if snapshot.assumed_absent:
                if not plan.ops:
                    current = scope  # nothing found: make sure on the whole table
                    continue
                for chain in snapshot.assumed_absent:
                    # fails the whole commit when the chain exists after all
                    plan.ops += [Op("new", chain), Op("delete_chain", chain)]
            try:
                backend.apply(plan)
                return out
            except FirewallError:
                if current is not scope:
                    current = scope
                    continue
                attempt += 1
                if attempt > retries:
                    raise


def transact_new(backend: Backend, table: str, fn: Callable[[Plan], T]) -> bool:
    """Apply ``fn``'s plan built against an empty table, without reading it: for a plan
    that creates a chain of its own, whose ``-N`` makes the commit fail when the chain
    exists already (and no jump to a chain can exist without it). False when the commit
    was refused; the caller then runs ``transact``."""
    if not hasattr(backend, "list_chain"):
        return False  # libiptc: the read is in process and cheap
    plan = Plan(TableState(table))
    fn(plan)
    if not any(op.kind == "new" for op in plan.ops):
        return False
    with backend.locked():
        try:
            backend.apply(plan)
        except FirewallError:
            return False
    return True
