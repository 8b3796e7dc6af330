"""CNI_ARGS (``K=V;K2=V2``) parsing with the reference's strictness.

The Go parser maps keys case-sensitively onto struct field names, rejects unknown keys
unless ``IgnoreUnknown`` is true, and requires every pair to split into exactly two parts.
"""

from __future__ import annotations

from .errors import CNIError

_TRUE = ("1", "true")
_FALSE = ("0", "false")


def split_pairs(cni_args: str) -> list[tuple[str, str]]:
    """Split ``K=V;K=V`` into pairs; ``ARGS: invalid pair`` for anything else."""
    if cni_args == "":
        return []
    pairs = []
    for item in cni_args.split(";"):
        parts = item.split("=")
        if len(parts) != 2:
            raise CNIError(f'ARGS: invalid pair "{item}"')
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_bool(value: str) -> bool:
    low = value.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise CNIError(f"Boolean unmarshal error: invalid input {value}")


def load_args(cni_args: str, fields: tuple[str, ...]) -> dict[str, str]:
    """Known fields of CNI_ARGS as a dict, the way ``types.LoadArgs`` fills a struct.

    ``fields`` are the accepted keys (``IgnoreUnknown`` is always accepted). Unknown keys
    raise ``ARGS: unknown args [...]`` unless ``IgnoreUnknown`` is true.
    """
    pairs = split_pairs(cni_args)
    ignore_unknown = False
    for key, value in pairs:
        if key == "IgnoreUnknown":
            ignore_unknown = parse_bool(value)
    known: dict[str, str] = {}
    unknown: list[str] = []
    for key, value in pairs:
        if key == "IgnoreUnknown":
            continue
        if key in fields:
            known[key] = value
        else:
            unknown.append(f'"{key}={value}"')
    if unknown and not ignore_unknown:
        raise CNIError(f"ARGS: unknown args [{' '.join(unknown)}]")
    return known


def join_pairs(pairs: list[tuple[str, str]] | list[list[str]]) -> str:
    """The CNI_ARGS value libcni builds from ``[][2]string``."""
    return ";".join(f"{k}={v}" for k, v in pairs)
