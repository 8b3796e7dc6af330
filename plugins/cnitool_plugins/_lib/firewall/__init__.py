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
from .model import Op, Plan, Rule, TableState, parse_save, quote, tokenize
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
]


def transact(backend: Backend, table: str, fn: Callable[[Plan], T], retries: int = 2) -> T:
    """Read ``table``, let ``fn`` plan changes, apply them as one transaction."""
    attempt = 0
    while True:
        with backend.locked():
            try:
                snapshot = backend.load(table)
            except TableUnavailable:
                raise
            except FirewallError as e:
                raise TableUnavailable(str(e)) from e
            plan = Plan(snapshot)
            out = fn(plan)
            if plan.ops and plan.state.chains == snapshot.chains:
                # e.g. a repeated ADD that rebuilds a chain rule for rule: nothing to write
                # (and the counters stay)
                plan.ops.clear()
            try:
                backend.apply(plan)
                return out
            except FirewallError:
                attempt += 1
                if attempt > retries:
                    raise
