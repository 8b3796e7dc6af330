"""portmap: forward host ports to a container (a chained plugin; iptables ``nat`` table).

Config keys: ``snat`` (default true), ``masqAll`` (default false), ``markMasqBit`` (default
13, 0..31), ``externalSetMarkChain`` (not together with markMasqBit), ``conditionsV4`` /
``conditionsV6`` (extra iptables match tokens for the entry rules), ``iptablesBackend``
(``auto``/``nft``/``legacy``; env ``PYCNI_IPTABLES_BACKEND`` wins) and
``runtimeConfig.portMappings`` (``hostPort``, ``containerPort``, ``protocol``, ``hostIP``).
Chains, rules and comments are the reference plugin's, so either implementation can remove
what the other made. Spec versions 0.1.0 .. 1.1.0.
"""
