"""``python -m taskcast`` is the ``taskcast`` command."""

from .cli import main

main()
