"""The SQLAlchemy result store (``backend``), Celery's tables, LISTEN/NOTIFY wake-ups."""
