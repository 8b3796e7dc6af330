"""pycni: a Python CNI toolchain (the cnitool command, a libcni library, reference plugins)."""

__version__ = "0.1.0"
