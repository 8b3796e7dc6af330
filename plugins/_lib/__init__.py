"""Shared plugin internals: network namespaces, netlink, sysctls, IPAM delegation, firewall.

This package is the only place that talks to the kernel (rtnetlink sockets, iptables, nft,
/proc/sys). Heavy dependencies are imported lazily inside the functions that need them so
that cheap verbs (VERSION, STATUS) never pay for them.
"""
