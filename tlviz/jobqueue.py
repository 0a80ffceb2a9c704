"""A first-come, first-served queue of long jobs (training, embedding) for one server.

At most ``slots`` jobs run at once (``$TLVIZ_MAX_JOBS``, default the number of CPU cores);
the others wait in order and can report their position or leave the queue when
cancelled. Each ticket has an *owner* (a workspace id) so that a workspace's queued and
running jobs can be counted against its limit.

>>> q = JobQueue(1)
>>> with q.slot(Ticket("a")) as t:
...     q.position(t)
0
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tlviz.errors import Cancelled

_ids = itertools.count(1)


def default_slots() -> int:
    """``$TLVIZ_MAX_JOBS`` (a positive integer), else the number of CPU cores."""
    try:
        value = int(os.environ.get("TLVIZ_MAX_JOBS") or 0)
    except ValueError:
        value = 0
    return value if value > 0 else (os.cpu_count() or 1)


@dataclass(eq=False)
class Ticket:
    """One job's place in the queue."""

    owner: str = ""
    what: str = ""
    id: int = field(default_factory=lambda: next(_ids))


class JobQueue:
    """Jobs wait here until one of ``slots`` is free; FIFO."""

    def __init__(self, slots: int | None = None):
        self.slots = max(1, int(slots or default_slots()))
        self._cv = threading.Condition()
        self._waiting: list[Ticket] = []
        self._running: list[Ticket] = []

    def position(self, ticket: Ticket) -> int | None:
        """0: running; k >= 1: k-th in line; None: not in the queue (finished or left)."""
        with self._cv:
            if ticket in self._running:
                return 0
            if ticket in self._waiting:
                return self._waiting.index(ticket) + 1
            return None

    def owned(self, owner: str) -> int:
        """Jobs of ``owner`` waiting or running."""
        with self._cv:
            return sum(t.owner == owner for t in self._waiting + self._running)

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._cv:
            return len(self._running), len(self._waiting)

    @contextlib.contextmanager
    def slot(self, ticket: Ticket, cancelled: Callable[[], bool] = lambda: False,
             on_wait: Callable[[int], None] | None = None) -> Iterator[Ticket]:
        """Wait for a free slot (raising Cancelled when ``cancelled()`` turns true while
        waiting; ``on_wait(position)`` sees each change of place), run the block in it."""
        with self._cv:
            self._waiting.append(ticket)
            last = None
            try:
                while not (len(self._running) < self.slots and self._waiting[0] is ticket):
                    if cancelled():
                        raise Cancelled("cancelled while waiting in the queue")
                    pos = self._waiting.index(ticket) + 1
                    if on_wait is not None and pos != last:
                        on_wait(pos)
                        last = pos
                    self._cv.wait(0.2)
            except BaseException:
                self._waiting.remove(ticket)
                self._cv.notify_all()
                raise
            self._waiting.pop(0)
            self._running.append(ticket)
            self._cv.notify_all()
        try:
            yield ticket
        finally:
            with self._cv:
                self._running.remove(ticket)
                self._cv.notify_all()


__all__ = ["JobQueue", "Ticket", "default_slots"]
