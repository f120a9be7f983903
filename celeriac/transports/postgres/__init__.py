"""The PostgreSQL broker: ``transport`` (PostgresTransport) and its schema, ``sql``."""
