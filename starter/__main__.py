"""`python -m starter` runs the CLI."""

from starter.cli import main

main()
