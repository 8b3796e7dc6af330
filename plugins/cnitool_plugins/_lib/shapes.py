"""The fields of each plugin's configuration, as its Go ``NetConf`` struct declares them.

skel spells a request's keys as these fields before a verb reads them (``"MTU"`` reads as
``mtu``, containerd's ``"HostPort"`` as ``hostPort``), because the Go plugins decode their
stdin into structs and so match keys case-insensitively. A field given as ``None`` keeps
the keys under it as they are: scalars, and Go maps such as ``sysctl`` or flannel's
``delegate``. Kept import-light: every plugin's entry module imports it.
"""

from __future__ import annotations

from cnitool.spec.keys import NETCONF, ROUTE, ListOf, Shape

_MAC = Shape({"mac": None})  # runtimeConfig.mac, args.cni.mac
_ARGS_MAC = Shape({"cni": _MAC})
_MASQ = {"ipMasq": None, "ipMasqBackend": None, "iptablesBackend": None}

BRIDGE = NETCONF.extend(
    {
        "bridge": None,
        "isGateway": None,
        "isDefaultGateway": None,
        "forceAddress": None,
        **_MASQ,
        "mtu": None,
        "hairpinMode": None,
        "promiscMode": None,
        "vlan": None,
        "vlanTrunk": ListOf(Shape({"id": None, "minID": None, "maxID": None})),
        "preserveDefaultVlan": None,
        "macspoofchk": None,
        "enabledad": None,
        "disableContainerInterface": None,
        "portIsolation": None,
        "args": _ARGS_MAC,
        "runtimeConfig": _MAC,
    }
)

PTP = NETCONF.extend({**_MASQ, "mtu": None})

MACVLAN = NETCONF.extend(
    {
        "master": None,
        "mode": None,
        "mtu": None,
        "mac": None,
        "bcqueuelen": None,
        "linkInContainer": None,
        "runtimeConfig": _MAC,
    }
)

IPVLAN = NETCONF.extend({"master": None, "mode": None, "mtu": None, "linkInContainer": None})

VLAN = NETCONF.extend({"master": None, "vlanId": None, "mtu": None, "linkInContainer": None})

RANGE = Shape({"subnet": None, "rangeStart": None, "rangeEnd": None, "gateway": None})
RANGE_SETS = ListOf(ListOf(RANGE))
HOST_LOCAL = NETCONF.extend(
    {
        "ipam": RANGE.extend(
            {
                "type": None,
                "name": None,
                "ranges": RANGE_SETS,
                "routes": ListOf(ROUTE),
                "dataDir": None,
                "resolvConf": None,
            }
        ),
        "args": Shape({"cni": Shape({"ips": None})}),
        "runtimeConfig": Shape({"ips": None, "ipRanges": RANGE_SETS}),
    }
)

PORT_MAPPING = Shape({"hostPort": None, "containerPort": None, "protocol": None, "hostIP": None})
PORTMAP = NETCONF.extend(
    {
        "snat": None,
        "masqAll": None,
        "markMasqBit": None,
        "externalSetMarkChain": None,
        "conditionsV4": None,
        "conditionsV6": None,
        "backend": None,
        "iptablesBackend": None,
        "runtimeConfig": Shape({"portMappings": ListOf(PORT_MAPPING)}),
    }
)

_TUNING = {
    "sysctl": None,
    "mac": None,
    "mtu": None,
    "promisc": None,
    "allmulti": None,
    "txQLen": None,
}
TUNING = NETCONF.extend(
    {
        **_TUNING,
        "dataDir": None,
        "runtimeConfig": _MAC,
        "args": Shape({"cni": Shape(_TUNING)}),
    }
)

# flannel's ipam, delegate and runtimeConfig are Go maps: copied into the delegate as given
FLANNEL = NETCONF.extend(
    {"subnetFile": None, "dataDir": None, "delegate": None, "ipam": None, "runtimeConfig": None}
)

NOOP = NETCONF.extend({"debugFile": None, "commandLog": None})
