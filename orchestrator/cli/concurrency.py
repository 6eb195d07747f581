"""``orchestrator concurrency list|set|delete|free``: cross-run tag concurrency limits."""

from __future__ import annotations

import json

import click
from rich import box
from rich.table import Table

from orchestrator.cli.common import bad_input_exits, get_instance, make_console
from orchestrator.concurrency.config import APPLY_PER_UNIQUE, TagConcurrencyLimit
from orchestrator.errors import InvalidInputError
from orchestrator.views.payloads import limit_state_json


def _limiter():
    from orchestrator.concurrency.redis import RedisLimiter
    from orchestrator.settings import get_settings
    from orchestrator.storage.redis import RedisInstance

    instance = get_instance()
    assert isinstance(instance, RedisInstance)
    return RedisLimiter(instance.client, instance.keys, get_settings().lease_seconds)


def _split(spec: str) -> tuple[str, str | None]:
    key, sep, value = spec.partition("=")
    if not key:
        raise InvalidInputError(f"{spec!r}: give KEY or KEY=VALUE")
    return key, (value if sep else None)


@click.group()
def concurrency() -> None:
    """Tag concurrency limits that hold across all runs and machines (kept in Redis)."""


# ignore_unknown_options: `set KEY -1` reaches the limit check (not "no such option '-1'")
@concurrency.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("spec")
@click.argument("limit", type=int)
@click.option(
    "--per-unique-value",
    is_flag=True,
    help="Give each value of KEY its own limit (applyLimitPerUniqueValue).",
)
def set_command(spec: str, limit: int, per_unique_value: bool) -> None:
    """Set the limit of tag KEY (every step with the key) or KEY=VALUE.

    \b
    Examples:
      orchestrator concurrency set database=redshift 2
      orchestrator concurrency set database 5 --per-unique-value
    """
    with bad_input_exits():
        key, value = _split(spec)
        if per_unique_value and value is not None:
            raise InvalidInputError("--per-unique-value takes KEY, not KEY=VALUE")
        if limit < 0:
            raise InvalidInputError(
                f"the limit must be 0 or more, got {limit} (0 holds every matching step "
                "back until the limit is raised)"
            )
        lim_value: str | dict[str, bool] | None = (
            {APPLY_PER_UNIQUE: True} if per_unique_value else value
        )
        _limiter().set_limit(TagConcurrencyLimit(key=key, value=lim_value, limit=limit))
    make_console().print(
        f"Limit set: {spec}{' (per unique value)' if per_unique_value else ''} = {limit}",
        markup=False,
    )


@concurrency.command("delete")
@click.argument("spec")
@click.option("--per-unique-value", is_flag=True, help="Delete the per-unique-value limit.")
def delete_command(spec: str, per_unique_value: bool) -> None:
    """Delete the limit of KEY or KEY=VALUE (slots already held stay until released)."""
    with bad_input_exits():
        key, value = _split(spec)
        lim_value: str | dict[str, bool] | None = (
            {APPLY_PER_UNIQUE: True} if per_unique_value else value
        )
        if not _limiter().delete_limit(key, lim_value):
            raise InvalidInputError(f"no limit {spec!r} (see orchestrator concurrency list)")
    make_console().print(f"Limit deleted: {spec}", markup=False)


@concurrency.command("list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array of limits, each with its buckets' holders and waiters.",
)
def list_command(as_json: bool) -> None:
    """Each limit with its holders (lease, run, step, attempt, worker, since) and waiters.

    With --json, a JSON array for scripts: per limit its spec, key, value, per_unique_value,
    limit and buckets (bucket, limit, holders, waiters with their position in line).
    """
    with bad_input_exits():
        limiter = _limiter()
        states = limiter.snapshot()
        sec, usec = limiter.client.time()  # Redis time, as the leases' own times
    now = sec + usec / 1e6
    if as_json:
        click.echo(json.dumps([limit_state_json(state, now) for state in states], indent=2))
        return
    out = make_console()
    if not states:
        out.print("No concurrency limits set.", markup=False)
        return
    for state in states:
        limit = state.limit.limit if state.limit is not None else "(deleted)"
        out.print(f"{state.spec}  limit {limit}", markup=False, style="bold")
        for bucket in state.buckets:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, title=None)
            for col in ("bucket", "", "lease", "run", "step", "attempt", "worker", "since"):
                table.add_column(col)
            for h in bucket.holders:
                table.add_row(
                    bucket.bucket,
                    "holds",
                    h.lease_id,
                    h.run_id[:8],
                    h.step_key,
                    str(h.attempt),
                    h.worker,
                    f"{now - h.since:.1f}s ago",
                )
            for w in bucket.waiters:
                table.add_row(
                    bucket.bucket,
                    "waits",
                    w.lease_id,
                    w.run_id[:8],
                    w.step_key,
                    str(w.attempt),
                    w.worker,
                    f"{now - w.since:.1f}s ago",
                )
            if bucket.holders or bucket.waiters:
                out.print(table)
        if not any(b.holders or b.waiters for b in state.buckets):
            out.print("  no holders, no waiters", markup=False)


@concurrency.command("free")
@click.option("--run", "run_id", default=None, help="Free every slot held or awaited by a run.")
@click.option("--lease", "lease_id", default=None, help="Free one lease.")
def free_command(run_id: str | None, lease_id: str | None) -> None:
    """Free slots by hand (e.g. of a run whose coordinator is gone for good)."""
    with bad_input_exits():
        if (run_id is None) == (lease_id is None):
            raise InvalidInputError("give exactly one of --run RUN_ID or --lease LEASE_ID")
        limiter = _limiter()
        if run_id is not None:
            count = limiter.free_run(run_id)
            message = f"Freed {count} lease(s) of run {run_id}"
        else:
            assert lease_id is not None
            if not limiter.free_lease(lease_id):
                raise InvalidInputError(f"no lease {lease_id!r}")
            message = f"Freed lease {lease_id}"
    make_console().print(message, markup=False)
