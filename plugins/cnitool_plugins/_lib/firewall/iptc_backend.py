"""Legacy x_tables through libiptc (python-iptables), one batch commit per table.

python-iptables does not take the xtables lock, so this backend takes ``/run/xtables.lock``
itself (the same flock iptables-legacy waits for) around read-modify-commit. Its import is
tuned so it neither runs ldconfig/gcc/ld nor imports distutils (~25 ms instead of ~60).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .backends import XTABLES_LOCK, FirewallError
from .model import Plan, Rule, Scope, TableState

_LIBDIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib/x86_64-linux-gnu")

# libxtables keeps its loaded extensions in process-global state bound to one address family:
# once IPv4 rules were built, the IPv6 lookup of the same target fails ("can't find target
# MASQUERADE") and vice versa. So libiptc serves the first family a process asks for, and
# the other family goes through iptables-legacy-restore (same tables, same lock).
_claimed_family: int | None = None
# held while importing python-iptables and while a backend claims its family
_IMPORT_LOCK = threading.RLock()


def _xtables_libdir() -> str | None:
    """The extension directory, which python-iptables otherwise finds by running ldconfig."""
    for d in _LIBDIRS:
        path = os.path.join(d, "xtables")
        if os.path.isdir(path):
            return path
    return None


def _sonames() -> dict[str, str]:
    """``{"ip4tc": "libip4tc.so.2", "c": "libc.so.6", ...}`` from the library directories."""
    out: dict[str, str] = {}
    for d in _LIBDIRS:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for f in names:
            base, sep, major = f.partition(".so.")
            if sep and major.isdigit() and base.startswith("lib"):
                out.setdefault(base[3:], f)
    return out


def _quiet_find_library(original: Any) -> Any:
    """A ``ctypes.util.find_library`` for the import: python-iptables asks it for libc,
    libip4tc, libip6tc and its own helper, and the stock one runs ldconfig, gcc and ld for
    each (9-16 processes, ~35 ms). Here the sonames come from listing the library
    directories instead."""
    sonames: dict[str, str] | None = None

    def find(name: str) -> str | None:
        nonlocal sonames
        if sonames is None:
            sonames = _sonames()
        if name in sonames:
            return sonames[name]
        if "xtwrapper" in name:  # python-iptables' own helper: found next to the package
            return None
        return original(name)  # type: ignore[no-any-return]

    return find


def import_iptc() -> Any:
    """Import python-iptables cheaply (no ldconfig, gcc or ld, no distutils).

    What the import needs is changed only for the import and restored right after: the
    extension directory in ``os.environ`` (the library reads it from there, at import time
    only), ``ctypes.util.find_library`` and a hidden ``distutils.sysconfig``. A lock keeps
    threads from interleaving those changes or seeing a half-imported module.
    """
    with _IMPORT_LOCK:
        if "iptc" in sys.modules:
            return sys.modules["iptc"]
        libdir = _xtables_libdir()
        set_env = libdir is not None and "XTABLES_LIBDIR" not in os.environ
        if set_env and libdir is not None:
            os.environ["XTABLES_LIBDIR"] = libdir
        # python-iptables falls back to sysconfig when distutils is missing; hiding it for
        # the import saves ~90 ms (and a deprecation warning)
        hidden = "distutils.sysconfig" not in sys.modules
        if hidden:
            sys.modules["distutils.sysconfig"] = None  # type: ignore[assignment]
        import ctypes.util

        original = ctypes.util.find_library
        ctypes.util.find_library = _quiet_find_library(original)
        try:
            import iptc  # type: ignore[import-untyped]
        except Exception as e:  # the library raises plain Exceptions when libxtables is absent
            raise FirewallError(f"python-iptables unusable: {e}") from e
        finally:
            ctypes.util.find_library = original
            if set_env:
                os.environ.pop("XTABLES_LIBDIR", None)
            if hidden and sys.modules.get("distutils.sysconfig", 0) is None:
                del sys.modules["distutils.sysconfig"]
        return iptc


def _prefix(addr: str) -> str:
    """'10.0.0.0/255.255.0.0' -> '10.0.0.0/16'; handles '!'."""
    neg = addr.startswith("!")
    if neg:
        addr = addr[1:]
    net = ipaddress.ip_network(addr, strict=False)
    return ("!" if neg else "") + str(net)


class IptcBackend:
    name = "legacy"

    def __init__(self, family: int) -> None:
        global _claimed_family
        with _IMPORT_LOCK:
            if _claimed_family is not None and _claimed_family != family:
                raise FirewallError(
                    f"libiptc already serves IPv{_claimed_family} in this process; "
                    f"IPv{family} needs the exec backend"
                )
            self.iptc = import_iptc()
            _claimed_family = family
        self.family = family
        self._tables: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"IptcBackend(ipv{self.family})"

    # --- plumbing
    def _table(self, table: str) -> Any:
        t = self._tables.get(table)
        if t is None:
            cls = self.iptc.Table if self.family == 4 else self.iptc.Table6
            t = cls(table, autocommit=False)
            self._tables[table] = t
        t.refresh()
        return t

    @contextmanager
    def locked(self) -> Iterator[None]:
        fd = os.open(XTABLES_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- rendering a libiptc rule as iptables-save tokens
    def _tokens(self, rule: Any) -> tuple[str, ...]:
        from .model import tokenize

        out: list[str] = []
        anywhere = ("0.0.0.0/0", "::/0")
        for opt, val in (("-s", rule.src), ("-d", rule.dst)):
            p = _prefix(val)
            if p.lstrip("!") not in anywhere:
                out += ["!", opt, p[1:]] if p.startswith("!") else [opt, p]
        for opt, val in (("-i", rule.in_interface), ("-o", rule.out_interface)):
            if val:
                out += ["!", opt, val[1:]] if val.startswith("!") else [opt, val]
        proto = rule.protocol
        if proto and proto not in ("ip", "all", "0"):
            out += ["!", "-p", proto[1:]] if proto.startswith("!") else ["-p", proto]
        for m in rule.matches:
            buf = m._get_saved_buf(rule.get_ip()) or b""
            out += ["-m", m.name, *tokenize(buf.decode())]
        t = rule.target
        if t is not None and t.name:
            flag = "-g" if getattr(t, "goto", False) else "-j"
            buf = b"" if t._is_standard_target() else (t._get_saved_buf(rule.get_ip()) or b"")
            out += [flag, t.name, *tokenize(buf.decode())]
        return tuple(out)

    # --- building a libiptc rule from tokens
    def _rule(self, args: tuple[str, ...]) -> Any:
        iptc = self.iptc
        rule = iptc.Rule() if self.family == 4 else iptc.Rule6()
        i = 0
        n = len(args)
        neg = False
        module: Any = None
        while i < n:
            a = args[i]
            if a == "!":
                neg = True
                i += 1
                continue
            if a in ("-s", "-d", "-i", "-o", "-p"):
                val = ("!" if neg else "") + args[i + 1]
                attr = {
                    "-s": "src",
                    "-d": "dst",
                    "-i": "in_interface",
                    "-o": "out_interface",
                    "-p": "protocol",
                }[a]
                setattr(rule, attr, val)
                neg = False
                i += 2
                continue
            if a == "-m":
                module = rule.create_match(args[i + 1])
                i += 2
                continue
            if a in ("-j", "-g"):
                module = rule.create_target(args[i + 1], goto=(a == "-g"))
                i += 2
                continue
            if a.startswith("--") and module is not None:
                vals: list[str] = []
                j = i + 1
                while j < n and not args[j].startswith("-") and args[j] != "!":
                    vals.append(args[j])
                    j += 1
                value: Any = vals[0] if len(vals) == 1 else (vals or "")
                if neg:
                    value = ["!", *vals] if vals else "!"
                try:
                    module.parse(a[2:], value)
                except Exception as e:
                    raise FirewallError(f"libiptc cannot parse {a} {' '.join(vals)}: {e}") from e
                neg = False
                i = j
                continue
            raise FirewallError(f"libiptc backend cannot express rule token {a!r} in {args}")
        return rule

    # --- interface
    def load(self, table: str, counters: bool = False, scope: Scope | None = None) -> TableState:
        try:
            t = self._table(table)
        except Exception as e:  # iptc raises its own errors, e.g. for a missing table
            raise FirewallError(f"libiptc cannot read table {table} (IPv{self.family}): {e}") from e
        state = TableState(table)
        if scope is not None:
            self._load_scoped(t, scope, state)
            return state
        for chain in t.chains:
            rules = chain.rules
            state.chains[chain.name] = [self._tokens(r) for r in rules]
            state.counters[chain.name] = [tuple(r.get_counters()) for r in rules]
        return state

    def _load_scoped(self, t: Any, scope: Scope, state: TableState) -> None:
        """Only the chains the scope names; of a searched chain only the rules whose target
        is a needle are rendered (the table itself is one copy from the kernel, in C)."""
        needles = set(scope.needles)
        for name in dict.fromkeys((*scope.full, *scope.search, *scope.exist, *scope.absent)):
            if not t.is_chain(name):
                continue
            if name in scope.full:
                rules = self.iptc.Chain(t, name).rules
            elif name in scope.search:
                rules = self._rules_to(t, name, needles)
            else:
                rules = []
                state.unread.add(name)  # exists; emptied before it is deleted
            state.chains[name] = [self._tokens(r) for r in rules]
            state.counters[name] = [(0, 0)] * len(rules)

    def _rules_to(self, t: Any, chain: str, targets: set[str]) -> list[Any]:
        """The rules of ``chain`` whose target is one of ``targets``: the others are only
        asked their target's name (one libiptc call each), not turned into rule objects."""
        obj = self.iptc.Chain(t, chain)
        out = []
        entry = t.first_rule(chain)
        while entry:
            name = t.get_target(entry)
            if name is not None and name.decode(errors="replace") in targets:
                out.append(t.create_rule(entry, obj))
            entry = t.next_rule(entry)
        return out

    def apply(self, plan: Plan) -> None:
        if not plan.ops:
            return
        iptc = self.iptc
        t = self._table(plan.table)
        try:
            for op in plan.ops:
                if op.kind == "new":
                    t.create_chain(op.chain)
                elif op.kind == "flush":
                    t.flush_entries(op.chain)
                elif op.kind == "delete_chain":
                    t.delete_chain(op.chain)
                elif op.kind == "append":
                    iptc.Chain(t, op.chain).append_rule(self._rule(op.args))
                elif op.kind == "insert":
                    iptc.Chain(t, op.chain).insert_rule(self._rule(op.args), op.position - 1)
                elif op.kind == "delete":
                    chain = iptc.Chain(t, op.chain)
                    target = Rule(op.chain, op.args).target
                    candidates = self._rules_to(t, op.chain, {target}) if target else chain.rules
                    for r in candidates:
                        if self._tokens(r) == op.args:
                            chain.delete_rule(r)
                            break
                    else:
                        raise FirewallError(f"rule {op.restore_line()} not found")
            t.commit()
        except FirewallError:
            t.refresh()
            raise
        except Exception as e:
            t.refresh()
            raise FirewallError(f"libiptc {plan.table} commit failed: {e}") from e
