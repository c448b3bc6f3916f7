"""`python -m service` runs the `earnwatch` command."""

from service.cli import main

main()
