"""Clients shared by brokers, result stores and the cluster store: Redis, SQLite, TLS, reconnect."""
