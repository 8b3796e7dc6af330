"""An in-memory iptables backend for the unit tests: one table held as a TableState,
read through the real save/``-S`` parsers and changed by replaying a plan's operations
with the kernel's refusals (``-N`` of an existing chain, ``-X`` of a chain in use, ``-D``
of a missing rule). It records what was read and written."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cnitool_plugins._lib.firewall import FirewallError
from cnitool_plugins._lib.firewall.model import (
    BUILTIN_CHAINS,
    Op,
    Plan,
    Rule,
    Scope,
    TableState,
    parse_save,
)

EMPTY_NAT = (
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
)


class MemBackend:
    """The nat table of one family, in memory (an exec backend: it lists chains too)."""

    def __init__(self, family: int = 4, text: str = "", name: str = "nft") -> None:
        self.family = family
        self.name = name
        self.state = parse_save(text or EMPTY_NAT, "nat")
        for chain in BUILTIN_CHAINS["nat"]:
            self.state.chains.setdefault(chain, [])
        self.applied: list[str] = []
        self.reads: list[str] = []  # "save" or the chain listed

    def save_text(self) -> str:
        out = ["*nat"]
        out += [
            f":{c} {'ACCEPT' if c in BUILTIN_CHAINS['nat'] else '-'} [0:0]"
            for c in self.state.chains
        ]
        out += [r.text() for r in self.state.all_rules()]
        return "\n".join([*out, "COMMIT", ""])

    def load(self, table: str, counters: bool = False, scope: Scope | None = None) -> TableState:
        if scope is not None and scope.narrow:
            from cnitool_plugins._lib.firewall.backends import RestoreBackend

            return RestoreBackend._load_narrow(self, table, scope)  # type: ignore[arg-type]
        self.reads.append("save")
        return parse_save(self.save_text(), table, scope)

    def list_chain(self, table: str, chain: str) -> list[str] | None:
        self.reads.append(chain)
        if chain not in self.state.chains:
            return None
        head = f"-P {chain} ACCEPT" if chain in BUILTIN_CHAINS["nat"] else f"-N {chain}"
        return [head, *(r.text() for r in self.state.rules(chain))]

    def _replay(self, op: Op, chains: dict[str, list[tuple[str, ...]]]) -> None:
        where = chains.get(op.chain)
        if op.kind == "new":
            if where is not None:
                raise FirewallError(f"chain {op.chain} already exists")
            chains[op.chain] = []
            return
        if where is None:
            raise FirewallError(f"no chain {op.chain}")
        if op.kind == "flush":
            where.clear()
        elif op.kind == "delete_chain":
            used = any(Rule(c, a).target == op.chain for c, rs in chains.items() for a in rs)
            if where or used:
                raise FirewallError(f"chain {op.chain} is not empty or in use")
            del chains[op.chain]
        elif op.kind == "append":
            where.append(op.args)
        elif op.kind == "insert":
            where.insert(op.position - 1, op.args)
        elif op.kind == "delete":
            if op.args not in where:
                raise FirewallError(f"no rule {op.restore_line()}")
            where.remove(op.args)

    def apply(self, plan: Plan) -> None:
        if not plan.ops:
            return
        chains = {c: list(r) for c, r in self.state.chains.items()}
        for op in plan.ops:
            self._replay(op, chains)  # all or nothing, as one commit
        self.state = TableState("nat", chains, {c: [(0, 0)] * len(r) for c, r in chains.items()})
        self.applied.append(plan.restore_text())

    @contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def lines(self) -> list[str]:
        return [r.text() for r in self.state.all_rules()]
