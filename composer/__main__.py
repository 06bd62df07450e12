"""``python -m composer`` runs the command line."""

from composer.cli.main import main

main()
