"""``python -m cnitool.cli`` runs the cnitool command."""

from .main import main

main()
