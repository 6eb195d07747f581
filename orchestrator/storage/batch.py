"""Writes of one scheduler pass, sent together.

A coordinator's run scheduler advances every run that is ready in one pass. What those moves
write and need no answer for (the loop's launch records, a run's final event, released
ownerships) and the step messages they send are gathered while the pass lasts and sent at its
end: the Redis writes in one pipeline, in the order they were made, then the messages in one
broker batch (kombu's ``Producer.batch``). Redis goes first so that a step's worker finds what
the pass wrote (its run's start, the bell it rings when done). A thousand runs in flight then
cost a few round trips per pass instead of several per step.

Code that writes checks :func:`current_batch` and queues its work there when a batch is open
(in this thread); outside a pass it writes at once, as before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

_local = threading.local()


class WriteBatch:
    """What one pass writes (see the module docstring)."""

    def __init__(self, client: Any):
        self.client = client
        self._redis: list[Callable[[Any], None]] = []
        self._producers: dict[int, Any] = {}
        self._stack = contextlib.ExitStack()

    def redis(self, queue: Callable[[Any], None]) -> None:
        """``queue(pipe)`` queues Redis commands; they run at the end of the pass."""
        self._redis.append(queue)

    def producer(self, producer: Any) -> Any:
        """``producer``, in a publish batch for the rest of the pass."""
        if id(producer) not in self._producers:
            self._producers[id(producer)] = producer
            self._stack.enter_context(producer.batch())
        return producer

    def flush(self) -> None:
        """Run the Redis writes (one pipeline), then send the messages."""
        try:
            if self._redis:
                pipe = self.client.pipeline(transaction=False)
                for queue in self._redis:
                    queue(pipe)
                self._redis = []
                pipe.execute()
        finally:
            self._stack.close()  # flushes each producer's batch


def current_batch() -> WriteBatch | None:
    """The batch of the pass under way in this thread, if any."""
    batch: WriteBatch | None = getattr(_local, "batch", None)
    return batch


@contextlib.contextmanager
def write_batch(client: Any) -> Iterator[WriteBatch]:
    """Gather this thread's batchable writes until the block ends, then send them."""
    batch = WriteBatch(client)
    _local.batch = batch
    try:
        yield batch
    finally:
        _local.batch = None
        batch.flush()
