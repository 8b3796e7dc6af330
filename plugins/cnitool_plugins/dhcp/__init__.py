"""dhcp IPAM: addresses from a DHCP server, kept by a long-lived daemon.

Two modes, as the reference binary has:

- ``dhcp daemon [-socketpath P] [-pidfile P] [-hostprefix PFX] [-broadcast] [-timeout D]
  [-resendmax D] [-resendtimeout D]`` (``daemon.py``) holds the leases. For each pod it
  runs the DHCP exchange inside the pod's netns on the pod's interface (``client.py``),
  sends the client ID ``<containerID>/<network>/<ifname>``, and renews, rebinds and
  releases in the background (``lease.py``);
- the plugin (``verbs.py``) forwards ADD, CHECK and DEL to the daemon over
  ``ipam.daemonSocketPath`` (default ``/run/cni/dhcp.sock``) and prints its answer. It is
  stdlib-only, like every other exec path.

The two speak pycni's own protocol (``wire.py``), not the reference's Go ``net/rpc``: our
plugin needs our daemon.

Config keys under ``ipam``: ``daemonSocketPath``, ``request`` (``[{option,
skipDefault}]``; default: routers and subnet-mask), ``provide`` (``[{option, value,
fromArg}]``, ``fromArg`` naming a CNI_ARGS key), ``priority`` (the metric of every route
of the result). Options are named as in dhcp-options(5) (``dhcp-client-identifier``,
``subnet-mask``, ``routers``, ``host-name``, ``user-class``, ``vendor-class-identifier``)
or by their decimal code.

Result: one IPv4 address with the router as gateway; routes from option 121, else option
33 plus a default route via the router. Versions: every spec version (0.1.0 .. 1.1.0);
results are built in the 1.1.0 shape and converted by skel.
"""

# the modules only ``dhcp daemon`` runs, a process of its own: the plugin service, which
# runs the plugin's verbs (config, verbs, wire), does not preload them
DAEMON_ONLY = frozenset({"client", "daemon", "lease", "packet", "state"})
