"""Shared plugin internals, one module per job: ``netconf`` (config-key readers), ``ipam``
(IPAM delegation, prevResult), ``iface`` (the container interface from a result, and its
checks), ``link`` (the veth pair and the container link), ``steps`` (ADD undo, DEL
teardown), ``statefile`` (atomic state files), ``ipmasq`` and ``firewall`` (iptables),
``netns``, ``netlink``, ``sysctl``; ``shapes`` (each plugin's config fields).

The plugins reach the kernel (rtnetlink sockets, iptables, /proc/sys) through this package;
the bridge's nft spoof check is its one exception. Heavy dependencies are imported lazily
inside the functions that need them so that cheap verbs (VERSION, STATUS) never pay for them.
"""
