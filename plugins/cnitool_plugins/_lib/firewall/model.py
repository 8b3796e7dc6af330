"""Chains and rules as data, in the canonical token form ``iptables-save`` prints.

Rules are built as token tuples exactly as ``iptables-save`` renders them (``-s 10.0.0.2/32``,
``-p tcp -m tcp --dport 80``, matches before the target), so that the state read back from
either backend can be compared token by token, and unit tests can record what would be
written without root.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from cnitool.spec.record import Record

_BLANKS = re.compile(r"[ \t\n]+")
# a character that makes a token need quotes in iptables-restore input
_UNPLAIN = re.compile(r"[^-_0-9a-zA-Z./:,!\[\]]")

BUILTIN_CHAINS = {
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
}


def quote(token: str) -> str:
    """Quote one token for iptables-restore input (double quotes, backslash escapes)."""
    if token and not _UNPLAIN.search(token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


# one iptables-save token piece: a quoted run (escapes inside, maybe unterminated at the
# end of the line), blanks between tokens, or an unquoted run (backslashes literal)
_PIECES = re.compile(r'"((?:[^"\\]|\\.)*)"?|([ \t\n]+)|([^ \t\n"]+)', re.DOTALL)
_ESCAPED = re.compile(r"\\(.)", re.DOTALL)


def tokenize(line: str) -> list[str]:
    """Split one iptables-save rule line into tokens (quotes and backslash escapes undone).

    Regular expressions rather than a loop over characters: ``cnitool chains`` reads
    every rule of a node's nat table through here."""
    if '"' not in line:
        return [t for t in _BLANKS.split(line) if t]
    out: list[str] = []
    cur: list[str] = []
    have = False
    for quoted, blanks, plain in _PIECES.findall(line):
        if blanks:
            if cur or have:
                out.append("".join(cur))
                cur, have = [], False
        elif plain:
            cur.append(plain)
        else:
            cur.append(_ESCAPED.sub(r"\1", quoted) if "\\" in quoted else quoted)
            have = True
    if cur or have:
        out.append("".join(cur))
    return out


class Rule(Record):
    """One rule: the chain it lives in and its canonical argument tokens (no ``-A chain``)."""

    chain: str
    args: tuple[str, ...]

    def text(self, op: str = "-A") -> str:
        return " ".join([op, quote(self.chain), *(quote(a) for a in self.args)])

    @property
    def target(self) -> str:
        """The jump/goto target, or ''."""
        args = self.args
        at = [args.index(flag) for flag in ("-j", "-g") if flag in args[:-1]]
        return args[min(at) + 1] if at else ""

    def comment(self) -> str:
        args = self.args
        return args[args.index("--comment") + 1] if "--comment" in args[:-1] else ""


class Scope(Record):
    """The part of a table a transaction reads; a plan built on it touches nothing else.

    - ``full``: chains read with all their rules;
    - ``search``: chains of which only the rules mentioning one of ``needles`` (after the
      chain name) are read -- e.g. the jumps into a container's chain from a chain every
      container shares. Other rules are skipped before they are tokenized;
    - ``exist``: chains that only need to be known to exist (a narrow read finds them from
      a jump it read, or asks for them one by one); their rules may stay unread;
    - ``absent``: chains a narrow read does not look for, taken as absent; a transaction
      that changes something asserts it (``-N``/``-X`` in the same commit) and falls back
      to the whole table when the assertion fails.
    - ``narrow``: read chain by chain (``iptables -S CHAIN``) rather than the whole table.
    """

    full: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    needles: tuple[str, ...] = ()
    exist: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    narrow: bool = False

    def wanted(self) -> set[str]:
        return {*self.full, *self.search, *self.exist, *self.absent}

    def keeps(self, chain: str, rest: str) -> bool:
        """Whether the rule of ``chain`` whose text after the chain name is ``rest`` is read."""
        if chain in self.full:
            return True
        return chain in self.search and any(n in rest for n in self.needles)


class TableState:
    """A table as read from a backend: chains in order, each with its rules (and counters).

    ``unread``: chains known to exist whose rules were not read (a narrow read)."""

    __slots__ = ("table", "chains", "counters", "unread", "assumed_absent")

    def __init__(
        self,
        table: str,
        chains: dict[str, list[tuple[str, ...]]] | None = None,
        counters: dict[str, list[tuple[int, int]]] | None = None,
    ) -> None:
        self.table = table
        self.chains: dict[str, list[tuple[str, ...]]] = {} if chains is None else chains
        self.counters: dict[str, list[tuple[int, int]]] = {} if counters is None else counters
        self.unread: set[str] = set()
        self.assumed_absent: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableState):
            return NotImplemented
        return (self.table, self.chains, self.counters) == (
            other.table,
            other.chains,
            other.counters,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"TableState(table={self.table!r}, chains={len(self.chains)})"

    def has_chain(self, name: str) -> bool:
        return name in self.chains

    def has_rule(self, rule: Rule) -> bool:
        return rule.args in self.chains.get(rule.chain, ())

    def rules(self, chain: str) -> list[Rule]:
        return [Rule(chain, a) for a in self.chains.get(chain, ())]

    def all_rules(self) -> list[Rule]:
        return [Rule(c, a) for c, rules in self.chains.items() for a in rules]

    def copy(self) -> TableState:
        out = TableState(
            self.table,
            {c: list(r) for c, r in self.chains.items()},
            {c: list(r) for c, r in self.counters.items()},
        )
        out.unread = set(self.unread)
        out.assumed_absent = self.assumed_absent
        return out


def _rule_line(line: str) -> tuple[str, str] | None:
    """``-A CHAIN rest`` -> (CHAIN, rest) without tokenizing; None for other lines."""
    if not line.startswith("-A "):
        return None
    end = line.find(" ", 3)
    if end < 0:
        return line[3:], ""
    return line[3:end], line[end:]


def parse_scoped(lines: Iterable[str], table: str, scope: Scope, state: TableState) -> None:
    """Add the chains and rules of ``scope`` found in save (or ``-S``) lines to ``state``.

    Lines are split on the chain name first; only the rules the scope keeps are tokenized.
    Counters are not read."""
    wanted = scope.wanted()
    current = table
    for raw in lines:
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        head = line[0]
        if head == "*":
            current = line[1:]
            continue
        if current != table:
            continue
        if head == ":" or line.startswith(("-N ", "-P ")):
            start = 1 if head == ":" else 3
            end = line.find(" ", start)
            name = line[start:] if end < 0 else line[start:end]
            if name in wanted:
                state.chains.setdefault(name, [])
                state.counters.setdefault(name, [])
            continue
        if head == "[":
            line = line[line.index("]") + 1 :].strip()
        split = _rule_line(line)
        if split is None or not scope.keeps(*split):
            continue
        toks = tokenize(line)
        if len(toks) < 2 or toks[0] != "-A":
            continue
        state.chains.setdefault(toks[1], []).append(tuple(toks[2:]))
        state.counters.setdefault(toks[1], []).append((0, 0))


def parse_save(text: str, table: str, scope: Scope | None = None) -> TableState:
    """Parse ``iptables-save [-c] -t <table>`` output into a TableState (only the part
    ``scope`` names, when given)."""
    state = TableState(table)
    if scope is not None:
        parse_scoped(text.splitlines(), table, scope, state)
        return state
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = line[1:]
            continue
        if current != table:
            continue
        if line.startswith(":"):
            name = line[1:].split()[0]
            state.chains.setdefault(name, [])
            state.counters.setdefault(name, [])
            continue
        if line == "COMMIT":
            current = None
            continue
        pkts = byts = 0
        if line.startswith("["):
            end = line.index("]")
            p, _, b = line[1:end].partition(":")
            pkts, byts = int(p), int(b)
            line = line[end + 1 :].strip()
        toks = tokenize(line)
        if len(toks) < 2 or toks[0] != "-A":
            continue
        state.chains.setdefault(toks[1], []).append(tuple(toks[2:]))
        state.counters.setdefault(toks[1], []).append((pkts, byts))
    return state


# --- planned changes -------------------------------------------------------------------


class Op(Record):
    """One change: kind is new|flush|append|insert|delete|delete_chain."""

    kind: str
    chain: str
    args: tuple[str, ...] = ()
    position: int = 0

    def restore_line(self) -> str:
        if self.kind == "new":
            # not ":chain - [0:0]": with --noflush that line empties a chain someone else
            # created since our snapshot; -N fails instead, and the transaction is retried
            return f"-N {quote(self.chain)}"
        if self.kind == "flush":
            return f"-F {quote(self.chain)}"
        if self.kind == "delete_chain":
            return f"-X {quote(self.chain)}"
        if self.kind == "append":
            return Rule(self.chain, self.args).text("-A")
        if self.kind == "insert":
            return " ".join(["-I", quote(self.chain), str(self.position), *map(quote, self.args)])
        if self.kind == "delete":
            return Rule(self.chain, self.args).text("-D")
        raise ValueError(f"unknown op {self.kind}")


class Plan:
    """Changes to one table, computed against (and applied to) a working copy of its state.

    Every method is idempotent against the state: it only records the operations needed,
    so a plan built from a fresh snapshot never fails for "already exists"/"not found".
    """

    def __init__(self, state: TableState) -> None:
        self.table = state.table
        self.state = state.copy()
        self.ops: list[Op] = []

    def __bool__(self) -> bool:
        return bool(self.ops)

    def ensure_chain(self, name: str) -> None:
        if name not in self.state.chains:
            self.state.chains[name] = []
            self.ops.append(Op("new", name))

    def flush_chain(self, name: str) -> None:
        """Create the chain, or empty it when it exists."""
        if name not in self.state.chains:
            self.ensure_chain(name)
        elif self.state.chains[name] or name in self.state.unread:
            self.state.chains[name] = []
            self.state.unread.discard(name)
            self.ops.append(Op("flush", name))

    def append_unique(self, rule: Rule) -> None:
        if rule.chain not in BUILTIN_CHAINS.get(self.table, ()):
            self.ensure_chain(rule.chain)
        rules = self.state.chains.setdefault(rule.chain, [])
        if rule.args not in rules:
            rules.append(rule.args)
            self.ops.append(Op("append", rule.chain, rule.args))

    def insert_unique(self, rule: Rule, position: int = 1) -> None:
        if rule.chain not in BUILTIN_CHAINS.get(self.table, ()):
            self.ensure_chain(rule.chain)
        rules = self.state.chains.setdefault(rule.chain, [])
        if rule.args not in rules:
            rules.insert(position - 1, rule.args)
            self.ops.append(Op("insert", rule.chain, rule.args, position))

    def delete_rule(self, rule: Rule) -> None:
        """Delete every copy of the rule."""
        rules = self.state.chains.get(rule.chain)
        while rules and rule.args in rules:
            rules.remove(rule.args)
            self.ops.append(Op("delete", rule.chain, rule.args))

    def delete_where(self, chain: str, pred: Callable[[Rule], bool]) -> list[Rule]:
        gone = [r for r in self.state.rules(chain) if pred(r)]
        for r in gone:
            self.delete_rule(r)
        return gone

    def delete_jumps_to(self, target: str, chains: Iterable[str] | None = None) -> None:
        for c in list(chains if chains is not None else self.state.chains):
            self.delete_where(c, lambda r: r.target == target)

    def delete_chain(self, name: str) -> None:
        """Remove every rule jumping to it, flush it and delete it (when it exists)."""
        if name not in self.state.chains:
            return
        self.delete_jumps_to(name)
        self.flush_chain(name)
        del self.state.chains[name]
        self.ops.append(Op("delete_chain", name))

    def restore_text(self) -> str:
        return "\n".join([f"*{self.table}", *(o.restore_line() for o in self.ops), "COMMIT", ""])
