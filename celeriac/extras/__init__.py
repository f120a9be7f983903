"""Beyond Celery: unique tasks, dead letters and the cluster store."""
