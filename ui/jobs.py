"""Long work (training, the ladder) in a background thread owned by the session.

The page starts a :class:`Job` and then *watches* it: a fragment rerun every second
(``ui.train_sections.watch``) redraws the progress and live chart from ``job.records``
until the thread ends, then reruns the page for the results. Reruns never touch the
training: the next run finds the job in the session; Stop sets ``job.stop`` which the
tlviz ``should_stop`` callback reads, so the ledger records the run as ``cancelled``.
The thread never calls streamlit.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

_KEY = "job."
POLL_SECONDS = 1.0  # the watcher's refresh while a job runs


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


def start(key: str, name: str, fn: Callable[[Job], Any], **meta) -> Job:
    """Run ``fn(job)`` in a daemon thread; the job is kept in the session under ``key``."""
    job = Job(name, meta=meta)

    def run() -> None:
        try:
            job.result = fn(job)
        except BaseException as e:  # noqa: BLE001 - reported to the page, not lost in a thread
            job.error, job.error_trace = e, traceback.format_exc()
        finally:
            job.finished = time.perf_counter()

    job.thread = threading.Thread(target=run, name=f"tlviz-{key}", daemon=True)
    st.session_state[_KEY + key] = job
    job.thread.start()
    return job


def get(key: str) -> Job | None:
    """The session's job under ``key`` (running or finished), or None."""
    return st.session_state.get(_KEY + key)


def forget(key: str) -> None:
    st.session_state.pop(_KEY + key, None)


def watch(job: Job, was_running: bool, draw: Callable[[Job], None]) -> None:
    """``job``'s progress bar and ``draw(job)``; redrawn every second while it runs (a
    fragment: the rest of the page is not rerun). ``was_running``: the page drew its
    controls as busy, so they are redrawn (a full rerun) once the job has ended."""
    st.fragment(run_every=POLL_SECONDS if was_running else None)(_watch)(job, was_running, draw)


def _watch(job: Job, was_running: bool, draw: Callable[[Job], None]) -> None:
    if was_running and not job.running:
        st.rerun()
    if job.running:
        done, total, msg = job.progress or (0, 0, "loading the dataset")
        count = f" · {done:,}/{total:,}" if total and done < total else ""
        epochs_txt = f" · epoch {len(job.records)}" if job.records else ""
        st.progress(min(1.0, done / total) if total else 0.0,
                    text=f"{msg or 'working'}{count}{epochs_txt} · {job.seconds:.0f} s")
    draw(job)


def request_stop(key: str) -> None:
    """Button callback: ask the job under ``key`` to stop at its next check."""
    job = get(key)
    if job is not None:
        job.stop.set()
