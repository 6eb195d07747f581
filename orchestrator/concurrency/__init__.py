"""Concurrency limits: per-run counting (``limits``), and the cross-run limiter's interface
(``limiter``) with its backends, Redis (``redis``) and an in-memory twin for tests (``memory``)."""
