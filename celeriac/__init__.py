"""celeriac: Celery's API and wire protocol, simpler inside, with an embedded SQLite default."""

__version__ = "0.1.0"
