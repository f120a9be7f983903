"""The Redis client (``client``) and its RESP fast path (``wire``), shared by broker and store."""
