"""The vlan main plugin: an 802.1q VLAN link (``vlanId``) on a node interface (the
master, which the config must name), created under a temporary name directly in the
container's netns and renamed to CNI_IFNAME; addresses from the IPAM plugin."""
