"""The warm path: a preloaded plugin service (``cnitool serve``) behind thin launchers.

A cold plugin call starts an interpreter and imports the plugin's code on every exec.
The service imports every plugin once and forks a fresh worker per request; the worker
joins the caller's mount and network namespaces and working directory, takes the
caller's environment, stdin and umask, and runs the plugin through ``skel.run``. The
launchers in a CNI bin dir forward each call over a Unix socket and fall back to the
cold path when the service is not there. ``cnitool add|check|del`` go the same way
(:mod:`.front`): a worker takes the ``cnitool`` process's place and runs the command.

Modules: :mod:`.wire` (the message format), :mod:`.router` and :mod:`.client` (the
stdlib-only code that launchers embed: the router picks the path, the client forwards),
:mod:`.front` (the ``cnitool`` command's entry), :mod:`.service` (the service loop),
:mod:`.worker` (what runs in a forked worker), :mod:`.units` (systemd unit files).
"""
