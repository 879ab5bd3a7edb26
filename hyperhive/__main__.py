"""`python -m hyperhive` is the `hyperhive` command."""

from hyperhive.cli import main

main()
