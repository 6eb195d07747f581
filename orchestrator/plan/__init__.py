"""Planning: flatten a job, resolve its run config, and build an immutable step plan."""
