"""Small helpers shared by every layer; ``celeriac.utils.log`` mirrors ``celery.utils.log``."""
