"""Background jobs: creation, progress, retries and the Celery task that runs them."""
