"""``python -m celeriac``: the same as the ``celeriac`` command."""

from celeriac.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
