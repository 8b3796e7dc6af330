"""loopback: bring ``lo`` up inside the container's network namespace.

CNI_IFNAME is ignored (always ``lo``). ADD reports ``lo`` with its first IPv4 and IPv6
addresses, or passes a ``prevResult`` through unchanged; DEL sets ``lo`` down and succeeds
when the namespace is already gone; CHECK verifies ``lo`` is up. No IPAM. All spec versions.
"""
