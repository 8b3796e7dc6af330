"""host-local IPAM: hands out addresses from configured ranges, one lease file per address.

Role: the IPAM plugin interface plugins (bridge, ptp, macvlan, ...) delegate to. It does
not touch any network namespace; ADD returns ``ips`` (+ ``routes``, ``dns``) only.

Config keys under ``ipam``: ``ranges`` (list of range sets; each a list of
``{subnet, rangeStart, rangeEnd, gateway}`` of one family), the legacy top-level
``subnet``/``rangeStart``/``rangeEnd``/``gateway``, ``routes``, ``dataDir`` (default
``/var/lib/cni/networks``), ``resolvConf``. Runtime inputs: ``runtimeConfig.ipRanges``
(prepended), requested addresses from CNI_ARGS ``IP`` (comma-separated allowed),
``args.cni.ips`` and ``runtimeConfig.ips``.

Leases live in ``<dataDir>/<network>/`` in exactly the Go plugin's format (see
``store.py``), so both can serve the same network on one node without ever handing out
the same address. Beyond the reference: GC (release leases of attachments not in
``cni.dev/valid-attachments``), STATUS (lease directory usable) and per-attachment hints
that spare DEL and CHECK a scan of every lease.

Versions: every spec version (0.1.0 .. 1.1.0); results are built in the 1.1.0 shape and
converted by skel.
"""
