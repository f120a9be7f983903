"""The Redis broker: ``transport`` (RedisTransport) and its parts, on ``drivers.redis``."""
