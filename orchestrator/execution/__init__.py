"""Execution: the loop (state machine), the step runner, contexts, events and results."""
