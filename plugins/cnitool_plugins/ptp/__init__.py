"""ptp: a point-to-point veth between the node and a container, routed (no bridge).

Config keys: ``ipMasq``, ``ipMasqBackend``, ``mtu``, ``ipam`` (required), ``dns``.
The container gets its IPAM addresses with a /32 (/128) link route to the gateway and the
subnet routed via it; the host veth carries the gateway address and a host route to each
container address. Verbs: ADD, CHECK, DEL, STATUS (forwarded to IPAM). Versions 0.1.0-1.1.0.
"""
