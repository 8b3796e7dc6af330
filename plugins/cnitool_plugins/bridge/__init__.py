"""bridge: connect a container to a Linux bridge on the node through a veth pair.

Config keys: ``bridge`` (default ``cni0``), ``isGateway``, ``isDefaultGateway``,
``forceAddress``, ``ipMasq``, ``ipMasqBackend``, ``mtu``, ``hairpinMode``, ``promiscMode``,
``vlan``, ``vlanTrunk``, ``preserveDefaultVlan``, ``macspoofchk``, ``enabledad``,
``disableContainerInterface``, ``portIsolation``, ``ipam`` (``{}`` = layer 2 only), ``dns``;
the MAC comes from CNI_ARGS ``MAC`` < ``args.cni.mac`` < ``runtimeConfig.mac``.
Verbs: ADD, CHECK, DEL, STATUS (forwarded to IPAM). Spec versions 0.1.0 to 1.1.0.
"""
