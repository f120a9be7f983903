"""Compatibility package: ``celeriac.utils.log`` mirrors ``celery.utils.log``."""
