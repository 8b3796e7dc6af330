"""tuning: a chained plugin that adjusts the container interface made by the plugin before it.

Config keys: ``sysctl`` (map of key to string value, written inside the container netns;
``IFNAME`` in a key stands for CNI_IFNAME; only keys under ``net.`` are accepted, repeated
keys are refused, and ``/etc/cni/tuning/allowlist.conf`` when present must match each key),
``mac``, ``mtu``, ``promisc``, ``allmulti``, ``txQLen``, ``dataDir`` (default
``/run/cni/tuning``, where the attributes changed are saved for DEL). The MAC may also come
from CNI_ARGS ``MAC`` and ``runtimeConfig.mac``; ``args.cni`` may carry ``sysctl``, ``mac``,
``mtu``, ``promisc``, ``allmulti`` and ``txQLen`` (precedence: config < CNI_ARGS <
runtimeConfig < args). ``prevResult`` is required on ADD and echoed back (with the new MAC).
Verbs: ADD, CHECK, DEL. Spec versions 0.1.0 to 1.1.0 (CHECK from 0.4.0).
"""
