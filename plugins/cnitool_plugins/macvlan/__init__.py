"""The macvlan main plugin: a macvlan link on a node interface (the master), created
under a temporary name directly in the container's netns and renamed to CNI_IFNAME;
addresses from the IPAM plugin, or layer 2 only with an empty ``ipam``."""
