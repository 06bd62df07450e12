"""``python -m composer`` runs the command line."""

from composer.cli import main

main()
