"""Which iptables backend to use, and where to look on teardown.

Choice (``PYCNI_IPTABLES_BACKEND`` env, else the plugin config key ``iptablesBackend``,
else ``auto``):
- ``nft``: iptables-nft-save / iptables-nft-restore;
- ``legacy``: libiptc via python-iptables (falls back to iptables-legacy-restore when the
  library cannot be loaded); ``legacy-restore`` forces the exec path;
- ``auto``: the mode of the host's ``iptables`` binary, unless the legacy tables already hold
  the rules while the nf_tables ones are empty (a node whose other tools write legacy).
Writes go to exactly one backend. Teardown also looks in the other one, but only where its
tables already exist, because merely listing legacy tables creates them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from cnitool.spec.errors import InvalidConfigError

from .backends import Backend, FirewallError, RestoreBackend, tables_present

ENV = "PYCNI_IPTABLES_BACKEND"
CONFIG_KEY = "iptablesBackend"
CHOICES = ("auto", "nft", "legacy", "legacy-restore")


def host_mode(family: int = 4) -> str:
    """'nft' or 'legacy' from the host's iptables binary (symlink target), '' if absent."""
    exe = shutil.which("iptables" if family == 4 else "ip6tables")
    if exe is None:
        return ""
    target = os.path.basename(os.path.realpath(exe))
    if "legacy" in target:
        return "legacy"
    if "nft" in target:
        return "nft"
    return "legacy"  # pre-1.8 iptables knew only x_tables


def _legacy(family: int, force_exec: bool = False) -> Backend:
    if not force_exec:
        try:
            from .iptc_backend import IptcBackend

            return IptcBackend(family)
        except FirewallError:
            pass
    return RestoreBackend(family, "legacy")


def _count_rules(backend: Backend) -> int:
    try:
        st = backend.load("nat")
    except FirewallError:
        return 0
    return sum(len(r) for r in st.chains.values())


def requested(config_value: object = None, env: Mapping[str, str] | None = None) -> str:
    e = (env if env is not None else os.environ).get(ENV, "")
    choice = e or (config_value if isinstance(config_value, str) else "") or "auto"
    if config_value is not None and not isinstance(config_value, str):
        raise InvalidConfigError(f'"{CONFIG_KEY}" must be a string, got {config_value!r}')
    if choice not in CHOICES:
        src = ENV if e else CONFIG_KEY
        raise InvalidConfigError(
            f"unknown iptables backend {choice!r} in {src} (choose one of {', '.join(CHOICES)})"
        )
    return choice


def choose(family: int, choice: str = "auto") -> Backend:
    """The backend new rules are written to."""
    if choice == "nft":
        return RestoreBackend(family, "nft")
    if choice == "legacy":
        return _legacy(family)
    if choice == "legacy-restore":
        return _legacy(family, force_exec=True)
    mode = host_mode(family)
    if mode == "legacy":
        return _legacy(family)
    nft = RestoreBackend(family, "nft")
    if "nat" in tables_present(family):
        legacy = RestoreBackend(family, "legacy")  # safe: the table exists already
        if _count_rules(legacy) > 0 and _count_rules(nft) == 0:
            return _legacy(family)
    return nft


def teardown_backends(family: int, choice: str = "auto") -> list[Backend]:
    """The write backend first, then the other one when its tables exist."""
    primary = choose(family, choice)
    out = [primary]
    if primary.name == "nft":
        if "nat" in tables_present(family):
            out.append(_legacy(family))
    elif shutil.which(RestoreBackend(family, "nft").save_cmd):
        out.append(RestoreBackend(family, "nft"))
    return out
