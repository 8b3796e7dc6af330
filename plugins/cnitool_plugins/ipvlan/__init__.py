"""The ipvlan main plugin: an ipvlan link on a node interface (the master), created under
a temporary name directly in the container's netns and renamed to CNI_IFNAME. The master
defaults to the default route's interface or, chained, to the single interface of the
previous result; addresses come from the IPAM plugin or, chained without ``ipam``, from
the previous result."""
