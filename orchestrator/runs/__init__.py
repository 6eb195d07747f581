"""A run from start to end: the Python entry points (``execute_job``, ``execute_in_process``),
the run driver wiring a plan, an executor, the loop and the stores together, and the
coordinator process machinery (lease keeper, scheduler)."""
