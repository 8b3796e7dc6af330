"""``python -m cnitool.cli`` runs the cnitool command, as the ``cnitool`` script does."""

from ..warm.front import main

main()
