"""`python -m orquestra` runs the command line."""

from orquestra.cli import main

main()
