"""CNI spec versions: parsing, comparison and the plugin-side reconciliation rules."""

from __future__ import annotations

from .errors import CNIError, IncompatibleVersionError

CURRENT = "1.1.0"
ALL = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LEGACY = ("0.1.0", "0.2.0")


def parse(version: str) -> tuple[int, int, int]:
    """``major.minor.micro`` as integers; missing parts are 0; empty means 0.1.0."""
    if version == "":
        version = "0.1.0"
    parts = version.split(".")
    if len(parts) > 3:
        raise CNIError(f'invalid version "{version}": too many parts')
    nums = []
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            raise CNIError(f'failed to convert version part "{part}" to an integer')
        nums.append(int(part))
    while len(nums) < 3:
        nums.append(0)
    return nums[0], nums[1], nums[2]


def gte(version: str, other: str) -> bool:
    """True when ``version >= other``."""
    return parse(version) >= parse(other)


def gt(version: str, other: str) -> bool:
    return parse(version) > parse(other)


def normalize(version: str) -> str:
    """The version a config means: empty is 0.1.0."""
    return version or "0.1.0"


def check_supported(config_version: str, supported: tuple[str, ...] | list[str]) -> None:
    """Plugin-side check for ADD/DEL: the config version must be listed exactly."""
    wanted = normalize(config_version)
    if wanted not in supported:
        listed = " ".join(f'"{v}"' for v in supported)
        raise IncompatibleVersionError(
            "incompatible CNI versions", f'config is "{wanted}", plugin supports [{listed}]'
        )


def check_at_least(
    config_version: str, supported: tuple[str, ...] | list[str], minimum: str, verb: str
) -> None:
    """Plugin-side gate for CHECK (0.4.0), GC and STATUS (1.1.0)."""
    if not gte(normalize(config_version), minimum):
        raise IncompatibleVersionError(f"config version does not allow {verb}")
    for v in supported:
        try:
            if gte(v, config_version):
                return
        except CNIError:
            continue
    raise IncompatibleVersionError(f"plugin version does not allow {verb}")
