"""flannel: turn flannel's per-node lease (``subnet.env``) into a delegate config.

Config keys: ``subnetFile`` (default ``/run/flannel/subnet.env``), ``dataDir`` (default
``/var/lib/cni/flannel``), ``delegate`` (object; default type ``bridge``), ``ipam`` (object,
default type ``host-local``; ``ranges`` and the network routes come from subnet.env) and
``runtimeConfig`` (passed on). The delegate config is saved to ``<dataDir>/<containerID>``
before the delegated ADD, and DEL replays exactly those bytes. Spec versions 0.1.0 .. 1.1.0.
"""
