"""Every Redis key the project uses, built in one place.

All keys start with the configurable prefix (``ORCHESTRATOR_KEY_PREFIX``, default
``orchestrator``) so deployments and test runs can share a server without colliding. Keys that
one Lua script touches together share a ``{...}`` hash tag where Redis Cluster would need it.

Schema:
    <p>:run:<run_id>              string  RunRecord JSON
    <p>:run:<run_id>:events       stream  the run's event log, one entry per event, field "e"
    <p>:runs                      zset    run_id -> created_at (for listing)
    <p>:runs:seq                  hash    run_id -> creation sequence (ties in created_at)
    <p>:seq                       string  counter behind runs:seq
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    """Key builder for one prefix."""

    prefix: str = "orchestrator"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_events(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def runs_seq(self) -> str:
        return f"{self.prefix}:runs:seq"

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"
