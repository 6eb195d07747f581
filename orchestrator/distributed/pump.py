"""How the runs a process drives hear what other processes write to their streams.

A run driver on a shared instance learns what happens elsewhere from its run's event stream:
the events its steps append on Celery workers, ``slot_granted`` events written by the
concurrency limiter when another run frees a slot, and ``cancel_requested`` events written by
``orchestrator run cancel``. Reading every driven run's stream with one blocking ``XREAD`` costs
a command as long as the number of runs at every wake-up; instead each process has a *bell*:
a small stream of its own (``RedisKeys.pump_bell``) that its :class:`StreamPump` blocks on. A
driven run's *bell pointer* (``RedisKeys.run_bell``) names that bell, and whoever appends an
event the driver must see rings it, in the same script (``finish.lua``, the limiter's grants,
``ring.lua`` for cancel requests): an entry naming the run. The pump then reads just the rung
runs' streams, in one round trip, and hands each run's new events to its :class:`Inbox`, which
the run's driver waits on (or which pokes the scheduler driving it).

A ring can miss (a writer that read the bell pointer just before another process adopted the
run): the pump also reads every subscribed stream once per sweep interval, so nothing waits
longer than that. The pump reads with the instance's client, so it rides out Redis outages like
everything else (``orchestrator.redis_client``) and goes on from each stream's last id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis

from orchestrator import lua
from orchestrator.events import Event
from orchestrator.redis_client import MAX_BLOCK_SECONDS
from orchestrator.redis_keys import RedisKeys
from orchestrator.storage.batch import current_batch

log = logging.getLogger("orchestrator.pump")

READ_COUNT = 1000  # entries read per stream per call
BELL_TTL_SECONDS = 7 * 24 * 3600


def ring(client: redis.Redis, keys: RedisKeys, run_id: str) -> bool:
    """Ring the bell of the process driving ``run_id`` (``ring.lua``), after appending an
    event its driver must see. False when no process has claimed the run's bell."""
    script = lua.script(client, "orchestrator.distributed", "ring")
    return bool(script(keys=[keys.run_bell(run_id)], args=[run_id]))


class Inbox:
    """The events of one run handed over by the pump; its driver drains them.

    Args:
        run_id: the run.
        types: event types kept (``STEP_SUCCESS``, ...).
        kinds: ENGINE_EVENT kinds kept (``slot_granted``, ...).
        on_poke: called (from the poking thread) whenever the inbox is poked, for drivers
            that are not blocked on :meth:`wait` (a scheduler driving many runs).
    """

    def __init__(
        self,
        run_id: str,
        types: frozenset[str] = frozenset(),
        kinds: frozenset[str] = frozenset(),
        on_poke: Callable[[], None] | None = None,
    ):
        self.run_id = run_id
        self.types = types
        self.kinds = kinds
        self.on_poke = on_poke
        self._needles = tuple(f'{word}"' for word in (*types, *kinds))
        self.cursor = "0-0"  # id of the last entry the pump read for this run (pump thread)
        self._events: list[Event] = []
        self._poked = False
        self._cond = threading.Condition()
        self._pipe: tuple[int, int] | None = None  # for select()-style waits (fileno)

    def wants(self, raw: str) -> bool:
        """Cheap pre-filter on an entry's JSON text, before decoding it (most entries of a
        run's stream are of no interest to its driver: starts, logs, its own records)."""
        return any(needle in raw for needle in self._needles)

    def put(self, events: Iterable[Event]) -> None:
        """Add events (pump thread)."""
        kept = [
            e
            for e in events
            if e.event_type_value in self.types
            or (e.event_type_value == "ENGINE_EVENT" and e.data.get("kind") in self.kinds)
        ]
        if kept:
            with self._cond:
                self._events.extend(kept)
            self.poke()

    def poke(self) -> None:
        """Wake the driver without events (a grant noted by renewal, a lost ownership)."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()
            pipe = self._pipe
        if pipe is not None:
            with contextlib.suppress(BlockingIOError):  # full: readable already
                os.write(pipe[1], b"x")
        if self.on_poke is not None:
            self.on_poke()

    def wait(self, timeout: float | None) -> bool:
        """Block until events arrive or someone pokes, at most ``timeout`` seconds (None:
        no limit). Returns whether it was woken."""
        with self._cond:
            if not self._events and not self._poked:
                self._cond.wait(timeout)
            return bool(self._events) or self._poked

    def drain(self) -> list[Event]:
        """The events received since the last drain (clears the poke)."""
        with self._cond:
            events, self._events = self._events, []
            self._poked = False
            pipe = self._pipe
        if pipe is not None:
            with contextlib.suppress(BlockingIOError):  # emptied
                while os.read(pipe[0], 4096):
                    pass
        return events

    def fileno(self) -> int:
        """A file descriptor that is readable while the inbox holds events or a poke, for
        waits that also watch pipes or sockets (``multiprocessing.connection.wait``)."""
        with self._cond:
            if self._pipe is None:
                read, write = os.pipe()
                os.set_blocking(read, False)
                os.set_blocking(write, False)
                self._pipe = (read, write)
                if self._events or self._poked:
                    os.write(write, b"x")
            return self._pipe[0]

    def close(self) -> None:
        with self._cond:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])


class StreamPump:
    """Hands driven runs the events other processes append to their streams (see the module
    docstring).

    Args:
        client: redis-py client (``decode_responses=True``).
        keys: key builder.
        sweep_interval: seconds between reads of every subscribed stream (the safety net for
            a missed ring).
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, sweep_interval: float = 5.0):
        self.client = client
        self.keys = keys
        self.sweep_interval = sweep_interval
        self.id = uuid.uuid4().hex[:12]
        self.bell = keys.pump_bell(self.id)
        self._bell_cursor = "0-0"
        self._subs: dict[str, Inbox] = {}  # run id -> inbox
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def subscribe(self, inbox: Inbox, after: str | None) -> Inbox:
        """Deliver the run's events stored after stream id ``after`` (None: from the start)
        to ``inbox`` until :meth:`unsubscribe`. The run's bell pointer names this pump's bell
        from now on, and the run's stream is read at once (ringing our own bell)."""
        inbox.cursor = after or "0-0"
        with self._cond:
            self._subs[inbox.run_id] = inbox
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, daemon=True, name=f"orchestrator-pump-{self.id}"
                )
                self._thread.start()
            self._cond.notify_all()

        def claim_bell(pipe: Any) -> None:
            pipe.set(self.keys.run_bell(inbox.run_id), self.bell, ex=BELL_TTL_SECONDS)
            pipe.xadd(self.bell, {"r": inbox.run_id}, maxlen=10000, approximate=True)
            pipe.expire(self.bell, BELL_TTL_SECONDS)

        batch = current_batch()
        if batch is not None and batch.client is self.client:
            batch.redis(claim_bell)  # with the scheduler's pass
        else:
            pipe = self.client.pipeline(transaction=False)
            claim_bell(pipe)
            pipe.execute()
        return inbox

    def unsubscribe(self, inbox: Inbox) -> None:
        with self._cond:
            if self._subs.get(inbox.run_id) is inbox:
                del self._subs[inbox.run_id]
        inbox.close()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        with contextlib.suppress(redis.RedisError):
            self.client.xadd(self.bell, {"r": ""}, maxlen=10000, approximate=True)

    def _serve(self) -> None:
        next_sweep = time.monotonic() + self.sweep_interval
        while True:
            with self._cond:
                while not self._subs and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
            try:
                block = max(0.0, min(next_sweep - time.monotonic(), MAX_BLOCK_SECONDS))
                reply: Any = self.client.xread(
                    {self.bell: self._bell_cursor}, count=READ_COUNT, block=int(block * 1000)
                )
                rung: set[str] = set()
                for _, entries in reply or []:
                    if entries:
                        self._bell_cursor = entries[-1][0]
                        rung.update(fields.get("r", "") for _, fields in entries)
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_interval
                    with self._cond:
                        rung = set(self._subs)  # the safety net: every stream
                self._read(rung)
            except redis.RedisError:  # not an outage (those are waited out in the client)
                log.exception("reading run event streams failed; reading again in 1 s")
                with self._cond:
                    self._cond.wait(1.0)

    def _read(self, run_ids: set[str]) -> None:
        """Read the new entries of these runs' streams (one round trip) and deliver them."""
        with self._cond:
            inboxes = [self._subs[r] for r in run_ids if r in self._subs]
        if not inboxes:
            return
        pipe = self.client.pipeline(transaction=False)
        for inbox in inboxes:
            pipe.xrange(
                self.keys.run_events(inbox.run_id), min=f"({inbox.cursor}", count=READ_COUNT
            )
        for inbox, entries in zip(inboxes, pipe.execute(), strict=True):
            if not entries:
                continue
            inbox.cursor = entries[-1][0]
            inbox.put(
                Event.from_dict(json.loads(fields["e"]))
                for _, fields in entries
                if inbox.wants(fields["e"])
            )
            if len(entries) == READ_COUNT:
                self._read({inbox.run_id})  # more than one read's worth
