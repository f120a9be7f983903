"""The embedded SQLite broker: ``transport`` (SQLiteTransport) and its schema, ``sql``."""
