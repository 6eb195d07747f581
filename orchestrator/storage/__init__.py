"""Storage: runs and their event logs (``Instance``), and IO managers for step outputs."""
