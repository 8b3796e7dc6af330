"""iptables backends behind one small interface: load a table, apply a plan.

- ``RestoreBackend``: ``iptables[-nft|-legacy]-save`` to read and one
  ``iptables-restore --noflush -w`` transaction per table to write. Used for nf_tables hosts
  (and for legacy hosts when python-iptables is unavailable).
- ``IptcBackend`` (``iptc_backend.py``): libiptc through python-iptables for legacy hosts,
  one batch commit under ``/run/xtables.lock``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from cnitool.spec.errors import CNIError

from .model import Plan, Rule, Scope, TableState, parse_save, parse_scoped

XTABLES_LOCK = "/run/xtables.lock"


class FirewallError(CNIError):
    """An iptables operation failed (code 999 like the reference plugins)."""


class TableUnavailable(FirewallError):
    """A table could not even be read (tool missing, family disabled, no kernel support):
    teardown treats that backend/family as unusable, as the reference skips it."""


class Backend(Protocol):
    name: str  # "nft" or "legacy"
    family: int  # 4 or 6

    def load(
        self, table: str, counters: bool = False, scope: Scope | None = None
    ) -> TableState: ...

    def apply(self, plan: Plan) -> None: ...

    @contextmanager
    def locked(self) -> Iterator[None]: ...


def _binary(family: int, mode: str, tool: str) -> str:
    """e.g. (4, 'nft', 'save') -> iptables-nft-save; mode '' = the host's default."""
    base = "iptables" if family == 4 else "ip6tables"
    name = f"{base}-{mode}-{tool}" if mode else f"{base}-{tool}"
    return name


class RestoreBackend:
    """Exec-based backend: ``*-save`` to read, ``*-restore --noflush -w`` to write."""

    def __init__(self, family: int, mode: str) -> None:
        self.family = family
        self.name = mode  # "nft" or "legacy"
        self.save_cmd = _binary(family, mode, "save")
        self.restore_cmd = _binary(family, mode, "restore")
        base = "iptables" if family == 4 else "ip6tables"
        self.list_cmd = f"{base}-{mode}"

    def __repr__(self) -> str:
        return f"RestoreBackend(ipv{self.family}, {self.name})"

    def _run(self, argv: list[str], stdin: str | None = None) -> str:
        exe = shutil.which(argv[0])
        if exe is None:
            raise FirewallError(f"{argv[0]} not found in PATH")
        proc = subprocess.run(
            [exe, *argv[1:]], input=stdin, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            # drop the blank lines and the generic "Try `iptables-restore -h'" hint
            detail = "; ".join(
                ln.strip() for ln in lines if ln.strip() and not ln.startswith("Try ")
            )
            raise FirewallError(
                f"running [{' '.join(argv)}] failed (exit status {proc.returncode}): {detail}"
            )
        return proc.stdout

    def load(self, table: str, counters: bool = False, scope: Scope | None = None) -> TableState:
        if scope is not None and scope.narrow:
            return self._load_narrow(table, scope)
        argv = [self.save_cmd, "-t", table]
        if counters:
            argv.insert(1, "-c")
        return parse_save(self._run(argv), table, scope)

    def list_chain(self, table: str, chain: str) -> list[str] | None:
        """``iptables -S CHAIN`` lines (its cost does not grow with the other chains of
        the table, unlike a save), or None when the chain does not exist."""
        try:
            return self._run([self.list_cmd, "-w", "-t", table, "-S", chain]).splitlines()
        except FirewallError as e:
            text = str(e)
            # legacy: "No chain/target/match by that name"; nf_tables 1.8.x says a missing
            # chain is "incompatible"
            if "exit status 1" in text and ("No chain" in text or "incompatible" in text):
                return None
            raise

    def _load_narrow(self, table: str, scope: Scope) -> TableState:
        state = TableState(table)
        for chain in (*scope.search, *scope.full):
            lines = self.list_chain(table, chain)
            if lines is not None:
                state.chains.setdefault(chain, [])
                parse_scoped(lines, table, scope, state)
        targets = {Rule(c, a).target for c, rules in state.chains.items() for a in rules}
        absent = [c for c in scope.absent if c not in state.chains]
        for chain in scope.exist:
            if chain in state.chains:
                continue
            if chain in targets:  # a jump to it was read: it exists
                state.chains[chain] = []
                state.unread.add(chain)
            elif absent:
                # the whole table is read anyway unless the commit can assert them absent
                absent.append(chain)
            else:
                lines = self.list_chain(table, chain)
                if lines is not None:
                    state.chains[chain] = []
                    parse_scoped(lines, table, Scope(full=(chain,)), state)
        state.assumed_absent = tuple(absent)
        return state

    def apply(self, plan: Plan) -> None:
        if not plan.ops:
            return
        text = plan.restore_text()
        try:
            self._run([self.restore_cmd, "--noflush", "-w"], text)
        except FirewallError as e:
            # iptables-restore names only a line number: show that line of our input
            m = re.search(r"line:? (\d+)", str(e))
            lines = text.splitlines()
            if m and 0 < int(m.group(1)) <= len(lines):
                n = int(m.group(1))
                raise FirewallError(f"{e} (input line {n}: {lines[n - 1]})") from e
            raise

    @contextmanager
    def locked(self) -> Iterator[None]:
        # iptables-restore -w takes the lock itself (legacy) or needs none (nf_tables)
        yield


def tables_present(family: int) -> set[str]:
    """Legacy x_tables tables that exist in this thread's netns (reading creates nothing)."""
    name = "ip_tables_names" if family == 4 else "ip6_tables_names"
    for base in ("/proc/thread-self/net", "/proc/self/net"):
        try:
            with open(os.path.join(base, name), encoding="ascii") as fh:
                return {ln.strip() for ln in fh if ln.strip()}
        except FileNotFoundError:
            continue
        except OSError:
            break
    return set()
