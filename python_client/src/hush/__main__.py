"""python -m hush: the CLI."""
from .cli import main

main()
