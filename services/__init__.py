"""Application services, entry points and the composition root."""
