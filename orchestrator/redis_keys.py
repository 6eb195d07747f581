"""Every Redis key the project uses, built in one place.

All keys start with the configurable prefix (``ORCHESTRATOR_KEY_PREFIX``, default
``orchestrator``) so deployments and test runs can share a server without colliding. Keys that
one Lua script touches together share a ``{...}`` hash tag where Redis Cluster would need it.

Schema:
    <p>:run:<run_id>              string  RunRecord JSON, as created (or last updated)
    <p>:run:<run_id>:state        hash    status, updated_at, start_time, end_time: the fields
                                          run events change, kept apart so a status change is
                                          one script (status_event.lua); overrides the JSON
    <p>:run:<run_id>:events       stream  the run's event log, one entry per event, field "e"
    <p>:runs                      zset    run_id -> created_at (for listing)
    <p>:runs:status:<status>      zset    run_id -> created_at of the runs in that status (one
                                          zset per RunStatus; every run is in exactly one)
    <p>:runs:job:<job_name>       zset    run_id -> created_at of the job's runs
    <p>:runs:indexed              string  "1" once the two indexes above hold every run (runs
                                          stored before they existed are added by
                                          RedisInstance.ensure_run_indexes)
    <p>:runs:seq                  hash    run_id -> creation sequence (ties in created_at)
    <p>:seq                       string  counter behind runs:seq
    <p>:run:<run_id>:plan         string  the digest of the run's plan (older runs: the JSON)
    <p>:plan:<digest>             string  an ExecutionPlan JSON by its digest (sha1), shared by
                                          runs with the same plan; workers cache it by digest
    <p>:run:<run_id>:owner        hash    who drives the run: owner, since, expires (ms, Redis
                                          TIME); lapsed when expires has passed
    <p>:runqueue                  zset    launched runs waiting for a coordinator (score: rank)
    <p>:runqueue:wakeup           list    one entry per launch; coordinators block on it
    <p>:runs:active               set     runs a coordinator is driving (resumed if orphaned)
    <p>:attempt:<attempt_id>      hash    step attempt: state, worker, token, started_at, final,
                                          reserved_by (the worker that took its message)
    <p>:attempt:<attempt_id>:hb   string  the attempt's heartbeat (expires unless renewed)
    <p>:attempts:running          zset    attempt id -> claim time (ms) of attempts a worker
                                          runs now (claim.lua adds, finish/settle.lua remove)
    <p>:runs:feed                 stream  r = run id, s = status: one entry per run created
                                          or status changed (capped at about 10,000)
    <p>:run:<run_id>:children     zset    run id -> created_at of runs re-executing it
    <p>:idempotency:<key>         string  the run id launched with this idempotency key
    <p>:workers                   hash    worker id -> JSON {hostname, pid, queues, locations}
    <p>:worker:<worker_id>        string  the worker's heartbeat (expires unless renewed)
    <p>:coordinators              hash    coordinator id -> JSON {hostname, pid, locations}
    <p>:coordinator:<id>          string  the coordinator's heartbeat (expires unless renewed)
    <p>:run:<run_id>:bell         string  the bell stream key of the process driving the run
    <p>:bell:<pump_id>            stream  a process's bell: field "r" = a run whose stream has
                                          news for it (see distributed/pump.py)

Cross-run concurrency limits (``orchestrator.concurrency.redis``). Every key shares the hash tag
``{limits}`` so the limiter's Lua scripts, which build bucket and lease keys at run time from
the base ``<p>:{limits}:``, stay in one Redis Cluster slot. (Their grant notifications are
XADDed to run event streams, which live outside that slot: the limiter needs a single-shard
Redis or Valkey.) The scripts build these names with the same formats as the methods below:
    <p>:{limits}:defs             hash    limit spec (key | key=value | key=*) -> JSON
                                          {key, value, limit}
    <p>:{limits}:buckets          set     buckets that have holders or waiters
    <p>:{limits}:holders:<bucket> zset    lease_id -> expiry (ms, Redis TIME)
    <p>:{limits}:waiters:<bucket> zset    lease_id -> rank (-priority * 2^40 + arrival)
    <p>:{limits}:lease:<lease_id> hash    run_id, step_key, attempt, worker, state
                                          (held|waiting), buckets (JSON list), priority, rank,
                                          token, ttl, queued, since, expiry
    <p>:{limits}:expiry           zset    lease_id -> expiry (ms) of every lease, held or waiting
    <p>:{limits}:run:<run_id>     set     lease ids of one run (for ``concurrency free --run``)
    <p>:{limits}:arrival          string  INCR counter behind waiter ranks
    <p>:{limits}:fence            string  INCR counter of fencing tokens (one per grant)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    """Key builder for one prefix."""

    prefix: str = "orchestrator"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}"

    def run_state(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:state"

    def run_events(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:events"

    @property
    def runs(self) -> str:
        return f"{self.prefix}:runs"

    def runs_by_status(self, status: str) -> str:
        """The index of the runs in ``status`` (a ``RunStatus`` or its value)."""
        return f"{self.prefix}:runs:status:{status}"

    def runs_by_job(self, job_name: str) -> str:
        """The index of the runs of job ``job_name``."""
        return f"{self.prefix}:runs:job:{job_name}"

    def runs_by_tag(self, key: str, value: str) -> str:
        """The index of the runs tagged ``key=value`` (the key's length first: keys and
        values may hold ``=`` or ``:``)."""
        return f"{self.prefix}:runs:tag:{len(key)}:{key}={value}"

    @property
    def runs_indexed(self) -> str:
        """Version of the run indexes: "2" once every stored run is in them (the tag
        indexes came with version 2)."""
        return f"{self.prefix}:runs:indexed"

    @property
    def runs_seq(self) -> str:
        return f"{self.prefix}:runs:seq"

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"

    # -- distributed runs (orchestrator.distributed) -----------------------------------------

    def run_plan(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:plan"

    def plan(self, digest: str) -> str:
        return f"{self.prefix}:plan:{digest}"

    def run_owner(self, run_id: str) -> str:
        return f"{self.prefix}:run:{run_id}:owner"

    @property
    def run_queue(self) -> str:
        return f"{self.prefix}:runqueue"

    @property
    def run_wakeup(self) -> str:
        """A list coordinators block on (BLPOP); one entry per launched run."""
        return f"{self.prefix}:runqueue:wakeup"

    @property
    def active_runs(self) -> str:
        return f"{self.prefix}:runs:active"

    def attempt(self, attempt_id: str) -> str:
        return f"{self.prefix}:attempt:{attempt_id}"

    def attempt_heartbeat(self, attempt_id: str) -> str:
        return f"{self.prefix}:attempt:{attempt_id}:hb"

    @property
    def running_attempts(self) -> str:
        """Attempts claimed by a worker and not finished, lost or canceled (for the UI)."""
        return f"{self.prefix}:attempts:running"

    @property
    def runs_feed(self) -> str:
        """One entry per run created or whose status changed (the UI's live runs list)."""
        return f"{self.prefix}:runs:feed"

    def run_children(self, run_id: str) -> str:
        """Runs that re-execute ``run_id`` (its direct children)."""
        return f"{self.prefix}:run:{run_id}:children"

    def idempotency(self, key: str) -> str:
        """The run launched with an idempotency key (HTTP API ``POST /api/runs``)."""
        return f"{self.prefix}:idempotency:{key}"

    @property
    def workers(self) -> str:
        return self.registry("worker")

    def worker(self, worker_id: str) -> str:
        return self.registry_beat("worker", worker_id)

    def registry(self, kind: str) -> str:
        """Registry of live processes of ``kind`` (``worker``, ``coordinator``)."""
        return f"{self.prefix}:{kind}s"

    def registry_beat(self, kind: str, member: str) -> str:
        return f"{self.prefix}:{kind}:{member}"

    def pump_bell(self, pump_id: str) -> str:
        return f"{self.prefix}:bell:{pump_id}"

    def run_bell(self, run_id: str) -> str:
        """Names the bell to ring when an event the run's driver must see is appended."""
        return f"{self.prefix}:run:{run_id}:bell"

    def run_bell_tail(self) -> str:
        """What follows the run id in :meth:`run_bell` (its head is the run stream's head)."""
        head, tail = self.run_bell("\x00").split("\x00")
        assert head == self.run_events_parts()[0]
        return tail

    # -- cross-run concurrency limits (orchestrator.concurrency.redis) ----------------------

    @property
    def limits_base(self) -> str:
        """Common head of every limiter key; the Lua scripts append the rest."""
        return f"{self.prefix}:{{limits}}:"

    @property
    def limit_defs(self) -> str:
        return f"{self.limits_base}defs"

    @property
    def limit_buckets(self) -> str:
        return f"{self.limits_base}buckets"

    def limit_holders(self, bucket: str) -> str:
        return f"{self.limits_base}holders:{bucket}"

    def limit_waiters(self, bucket: str) -> str:
        return f"{self.limits_base}waiters:{bucket}"

    def limit_lease(self, lease_id: str) -> str:
        return f"{self.limits_base}lease:{lease_id}"

    @property
    def limit_expiry(self) -> str:
        return f"{self.limits_base}expiry"

    def limit_run(self, run_id: str) -> str:
        return f"{self.limits_base}run:{run_id}"

    @property
    def limit_arrival(self) -> str:
        return f"{self.limits_base}arrival"

    @property
    def limit_fence(self) -> str:
        return f"{self.limits_base}fence"

    def run_events_parts(self) -> tuple[str, str]:
        """``run_events(run_id)`` as (head, tail) around the run id, for Lua scripts that
        build the stream key of a run they only learn at run time."""
        marker = "\x00"
        head, tail = self.run_events(marker).split(marker)
        return head, tail
