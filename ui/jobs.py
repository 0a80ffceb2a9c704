"""Long work (training, the ladder) in a background thread owned by the session.

The page starts a :class:`Job` and then *watches* it (:func:`watch`): a fragment redraws
the progress and live chart from ``job.records`` every second until the thread ends, then
reruns the page for the results. Reruns never touch the
training: the next run finds the job in the session; Stop sets ``job.stop`` which the
tlviz ``should_stop`` callback reads, so the ledger records the run as ``cancelled``.
The thread never calls streamlit. Every job waits for a slot of the server-wide
:data:`QUEUE` (``TLVIZ_MAX_JOBS`` at once); while it waits the watcher shows its place in
line, and Stop takes it out of the line.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from tlviz.jobqueue import JobQueue, Ticket

_KEY = "job."
POLL_SECONDS = 1.0  # the watcher's refresh while a job runs
QUEUE = JobQueue()  # one per server process: at most TLVIZ_MAX_JOBS jobs run at once


@dataclass
class Job:
    """A function running in a thread, with its progress and per-epoch records."""

    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    records: list[dict] = field(default_factory=list)
    progress: tuple[int, int, str] | None = None
    result: Any = None
    error: BaseException | None = None
    error_trace: str = ""
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    thread: threading.Thread | None = None
    meta: dict = field(default_factory=dict)
    shown: bool = False  # the page has taken the result
    ticket: Ticket | None = None  # its place in the server's queue

    @property
    def queued(self) -> int | None:
        """Its place in line (1: next), or None when it runs or has ended."""
        pos = QUEUE.position(self.ticket) if self.ticket is not None else None
        return pos or None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def seconds(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    # callbacks in tlviz's shapes
    def on_progress(self, done: int, total: int, msg: str = "") -> None:
        self.progress = (done, total, msg)

    def on_epoch(self, rec: dict) -> None:
        self.records.append(dict(rec))

    def should_stop(self) -> bool:
        return self.stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends (or ``timeout`` seconds); True when it has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


def _owner() -> str:
    from ui import workspace

    ws = workspace.session()
    return ws.id if ws is not None else ""


def start(key: str, name: str, fn: Callable[[Job], Any], **meta) -> Job:
    """Run ``fn(job)`` in a daemon thread once the server's queue has a free slot; the job
    is kept in the session under ``key``. The thread sees this run's context (the active
    workspace). A workspace over its job limit gets a message naming it, and no job."""
    from tlviz import workspaces

    owner = _owner()
    limit = int(workspaces.limits()["jobs"])
    if owner and QUEUE.owned(owner) >= limit:
        st.error(f"This workspace already has {limit} job{'s' * (limit != 1)} queued or running "
                 "(TLVIZ_WORKSPACE_JOBS): wait for one to finish or stop it.")
        st.stop()
    job = Job(name, meta=meta, ticket=Ticket(owner, name))
    context = contextvars.copy_context()

    def run() -> None:
        try:
            with QUEUE.slot(job.ticket, job.should_stop,
                            lambda pos: job.on_progress(0, 0, f"waiting in the queue, place {pos}")):
                job.progress = None
                job.started = time.perf_counter()
                job.result = fn(job)
        except BaseException as e:  # noqa: BLE001 - reported to the page, not lost in a thread
            job.error, job.error_trace = e, traceback.format_exc()
        finally:
            job.finished = time.perf_counter()

    job.thread = threading.Thread(target=context.run, args=(run,), name=f"tlviz-{key}", daemon=True)
    st.session_state[_KEY + key] = job
    job.thread.start()
    return job


def get(key: str) -> Job | None:
    """The session's job under ``key`` (running or finished), or None."""
    return st.session_state.get(_KEY + key)


def forget(key: str) -> None:
    st.session_state.pop(_KEY + key, None)


def watch(job: Job, was_running: bool, draw: Callable[[Job, int], None]) -> None:
    """``job``'s progress bar and ``draw(job, n)``; kept live while it runs (a fragment: the
    rest of the page is not rerun). ``was_running``: the page drew its controls as busy, so
    they are redrawn (a full rerun) once the job has ended. ``n`` numbers the draws within
    one script run: an element drawn by ``draw`` takes it into its key.

    The page's own run draws once and goes on; the fragment's first timed rerun then stays
    in the fragment, redrawing every :data:`POLL_SECONDS` until the job ends, and reruns the
    page. One tick of the browser's timer is all it needs: under load (30 sessions on two
    cores) the timer of some sessions stopped ticking and their page never saw the end.
    Once the job has ended the page draws the result without a fragment, inside the same
    container: a late tick of the old fragment's timer then finds no fragment to rerun (it
    had blanked the results' first row on some pages, 3 of 20 browsers)."""
    from ui import workspace

    with st.container():  # one block: what the page draws below it keeps its place
        if not (job.running or was_running):  # it ended before this run: nothing to watch
            draw(job, 0)
            return
        calls = {"n": 0}  # the same dict in every rerun of this fragment (its arguments are kept)
        workspace.fragment(run_every=POLL_SECONDS)(_watch)(job, was_running, draw, calls)


def _progress(job: Job) -> None:
    place = job.queued
    if place is not None:
        running, waiting = QUEUE.counts()
        st.progress(0.0, text=f"Waiting in the queue: place {place} of {waiting} "
                              f"({running} job{'s' * (running != 1)} running on this server) "
                              "· Stop leaves the queue")
        return
    done, total, msg = job.progress or (0, 0, "loading the dataset")
    count = f" · {done:,}/{total:,}" if total and done < total else ""
    epochs_txt = f" · epoch {len(job.records)}" if job.records else ""
    st.progress(min(1.0, done / total) if total else 0.0,
                text=f"{msg or 'working'}{count}{epochs_txt} · {job.seconds:.0f} s")


def _watch(job: Job, was_running: bool, draw: Callable[[Job, int], None], calls: dict) -> None:
    calls["n"] += 1
    if was_running and not job.running:
        st.rerun()
    if calls["n"] == 1 or not job.running:  # the page's own run: draw and let the page go on
        if job.running:
            _progress(job)
        draw(job, 0)
        return
    bar, body = st.empty(), st.empty()
    drawn, n = None, 0
    while job.running:  # a rerun of this fragment alone: stream until the job ends
        with bar.container():
            _progress(job)
        if (version := (len(job.records), job.queued is None)) != drawn:
            with body.container():
                draw(job, n)
            drawn, n = version, n + 1
        time.sleep(POLL_SECONDS)
    st.rerun()


def request_stop(key: str) -> None:
    """Button callback: ask the job under ``key`` to stop at its next check."""
    job = get(key)
    if job is not None:
        job.stop.set()
