"""What the runtime tells libcni about one attachment (the Go ``RuntimeConf``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..spec.args import join_pairs


@dataclass
class RuntimeConf:
    """One attachment's identity and the per-call inputs a runtime provides.

    ``args`` become CNI_ARGS (``K=V;K=V``, order kept); ``capability_args`` are the
    runtime's capability values (``portMappings``, ``ipRanges``, ...), of which each
    plugin receives, as ``runtimeConfig``, only the ones it declares.
    """

    container_id: str
    netns: str
    ifname: str
    args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)

    def cni_args(self) -> str:
        """The CNI_ARGS value for this attachment (empty when there are no args)."""
        return join_pairs(self.args)
