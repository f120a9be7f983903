"""Running one task, shared by eager ``apply()`` and every pool: context, hooks, retries, limits."""
