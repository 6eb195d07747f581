"""One blocking stream read for every run a process drives.

A run driver on a shared instance learns what happens elsewhere from its run's event stream:
the events its steps append on Celery workers, ``slot_granted`` events written by the
concurrency limiter when another run frees a slot, and ``cancel_requested`` events written by
``orchestrator run cancel``. Rather than one blocking ``XREAD`` per run (one thread and one
connection each), a process has one :class:`StreamPump`: a thread that reads every subscribed
run stream with a single ``XREAD BLOCK`` and hands each run's new events to its
:class:`Inbox`, which the run's driver waits on. A new subscription wakes a pump blocked on the
others by appending to a small wake stream of its own (``RedisKeys.pump_wake``).

The pump reads with the instance's client, so it rides out Redis outages like everything else
(``orchestrator.redis_client``) and goes on from each stream's last id when the server is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import redis

from orchestrator.execution.events import Event
from orchestrator.redis_client import MAX_BLOCK_SECONDS
from orchestrator.redis_keys import RedisKeys

log = logging.getLogger("orchestrator.pump")

READ_COUNT = 1000  # entries read per stream per call
WAKE_TTL_SECONDS = 24 * 3600


class Inbox:
    """The events of one run handed over by the pump; its driver drains them.

    Args:
        run_id: the run.
        kinds: only ENGINE_EVENTs of these kinds are kept (None: every event).
    """

    def __init__(self, run_id: str, kinds: frozenset[str] | None = None):
        self.run_id = run_id
        self.kinds = kinds
        self.cursor = "0-0"  # id of the last entry the pump read for this run (pump thread)
        self._events: list[Event] = []
        self._poked = False
        self._cond = threading.Condition()
        self._pipe: tuple[int, int] | None = None  # for select()-style waits (fileno)

    def wants(self, raw: str) -> bool:
        """Cheap pre-filter on an entry's JSON text before decoding it."""
        return self.kinds is None or any(f'"{kind}"' in raw for kind in self.kinds)

    def put(self, events: Iterable[Event]) -> None:
        """Add events (pump thread)."""
        kept = [e for e in events if self.kinds is None or e.data.get("kind") in self.kinds]
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
    """Reads many run streams with one blocking call (see the module docstring).

    Args:
        client: redis-py client (``decode_responses=True``).
        keys: key builder.
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys):
        self.client = client
        self.keys = keys
        self.id = uuid.uuid4().hex[:12]
        self._wake_key = keys.pump_wake(self.id)
        self._wake_cursor = "0-0"
        self._subs: dict[str, Inbox] = {}  # stream key -> inbox
        self._cond = threading.Condition()
        self._reading = False  # an XREAD is (about to be) blocked with the current streams
        self._wake_sent = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def subscribe(self, inbox: Inbox, after: str | None) -> Inbox:
        """Deliver the run's events stored after stream id ``after`` (None: from the start)
        to ``inbox`` until :meth:`unsubscribe`."""
        inbox.cursor = after or "0-0"
        with self._cond:
            self._subs[self.keys.run_events(inbox.run_id)] = inbox
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, daemon=True, name=f"orchestrator-pump-{self.id}"
                )
                self._thread.start()
            self._cond.notify_all()
            wake = self._reading and not self._wake_sent
            if wake:
                self._wake_sent = True
        if wake:
            self._wake()
        return inbox

    def unsubscribe(self, inbox: Inbox) -> None:
        with self._cond:
            key = self.keys.run_events(inbox.run_id)
            if self._subs.get(key) is inbox:
                del self._subs[key]
        inbox.close()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            wake = self._reading
        if wake:
            self._wake()

    def _wake(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(self._wake_key, {"w": "1"}, maxlen=16, approximate=True)
        pipe.expire(self._wake_key, WAKE_TTL_SECONDS)
        pipe.execute()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._subs and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                streams = {key: inbox.cursor for key, inbox in self._subs.items()}
                streams[self._wake_key] = self._wake_cursor
                self._reading = True
            try:
                reply = self.client.xread(
                    streams,  # type: ignore[arg-type]
                    count=READ_COUNT,
                    block=int(MAX_BLOCK_SECONDS * 1000),
                )
            except redis.RedisError:  # not an outage (those are waited out in the client)
                log.exception("reading run event streams failed; reading again in 1 s")
                reply = []
                with self._cond:
                    self._cond.wait(1.0)
            finally:
                with self._cond:
                    self._reading = False
                    self._wake_sent = False
            self._deliver(reply or [])

    def _deliver(self, reply: Any) -> None:
        for key, entries in reply:
            if not entries:
                continue
            if key == self._wake_key:
                self._wake_cursor = entries[-1][0]
                continue
            with self._cond:
                inbox = self._subs.get(key)
            if inbox is None:
                continue  # unsubscribed meanwhile
            events = [
                Event.from_dict(json.loads(fields["e"]))
                for _, fields in entries
                if inbox.wants(fields["e"])
            ]
            inbox.cursor = entries[-1][0]
            inbox.put(events)
