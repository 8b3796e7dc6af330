"""Spec-level types shared by the runtime side (libcni, cnitool) and the plugin side (skel).

Nothing here imports click, rich, pyroute2 or iptables: plugins load these modules on
every exec, so they stay small.
"""
