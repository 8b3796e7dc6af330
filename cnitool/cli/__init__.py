"""The ``cnitool`` command line (click). Only this package imports click, and rich only
when it draws for a terminal. Each command lives in its own module, imported on use."""
