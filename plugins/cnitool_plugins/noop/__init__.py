"""The noop test plugin: records every call in a debug file and answers as that file says.

A test double for runtimes and libcni (see ``plugin.py`` for the debug file format).
Supports every spec version plus the deliberately invalid ``0.-42.0``, which callers
must tolerate in a VERSION answer.
"""

ABOUT = "CNI noop plugin v0.7.0"
# the first entry is deliberately not a valid version: callers must cope with it
DEFAULT_VERSIONS = ("0.-42.0", "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
