"""Concurrency limits: per-run counting and the cross-run limiter in Redis."""
