"""``python -m eventplatform`` runs the CLI."""

from eventplatform.cli import main

main()
