"""This browser session's workspace (classroom mode; see :mod:`tlviz.workspaces`).

The session's own token lives in ``st.session_state`` only. "Share this view" puts the
workspace's *share token* in the URL (``?view=``): a session opening that link sees the
same datasets and runs read-only. Single mode has no workspace (``session()`` is None) and
draws nothing here.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable, Iterator

import streamlit as st

from tlviz import workspaces
from tlviz.errors import BadInput
from tlviz.workspaces import Workspace
from ui import state
from ui.text import esc

_TOKEN = "ws.token"  # session_state: this session's own token (never put in the URL)
COOKIE = "tlviz_ws"  # the same token in a session cookie: a reload keeps the workspace
_PRESENTER = "ws.presenter"  # session_state: the presenter token was given
_TOUCHED = "ws.touched"
_SWEEP_EVERY = 3600.0
_last_sweep = [0.0]  # per process: idle workspaces are swept at most hourly


def _sweep_now() -> None:
    now = time.time()
    if now - _last_sweep[0] < _SWEEP_EVERY:
        return
    _last_sweep[0] = now
    removed = workspaces.sweep()
    if removed:
        print(f"tlviz: removed {len(removed)} idle workspace(s)", file=sys.stderr)


def _cookie() -> str | None:
    """The workspace token this browser remembered (a reload or a new tab), if any."""
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no browser behind this session (AppTest, bare mode)
        return None
    return value if workspaces.is_token(value) else None


def _own() -> Workspace:
    token = st.session_state.get(_TOKEN)
    if token is None:  # a new session: this browser's workspace if it still exists, else a new one
        token = _cookie()
        try:
            ws = workspaces.open_token(token) if token else None
        except BadInput:  # expired or deleted since
            ws = None
        if ws is None:
            token, ws = workspaces.create()
        st.session_state[_TOKEN] = token
    else:  # expired or deleted meanwhile: the same token starts an empty one
        ws = workspaces.open_token(token, create_missing=True)
    if time.time() - st.session_state.get(_TOUCHED, 0.0) > 600:
        ws.touch()
        st.session_state[_TOUCHED] = time.time()
    return ws


def session() -> Workspace | None:
    """The workspace this session works in (None in single mode): a shared view's, read-only,
    when the URL (or an earlier page of this session) carries a valid ``view`` token; else
    the session's own, created on first use."""
    if not workspaces.classroom():
        return None
    _sweep_now()
    view = state.get("view", "", valid=workspaces.is_token)
    if view:
        token = st.session_state.get(_TOKEN)
        if token and workspaces.share_token(token) == view:
            return _own()
        try:
            ws = workspaces.open_shared(view)
            state.set("view", view, default="")  # kept for the next pages of this session
            return ws
        except workspaces.UnknownName as e:
            st.toast(f"{e}: showing your own workspace.", icon=":material/link_off:")
            state.set("view", "", default="")
    return _own()


@contextlib.contextmanager
def activated() -> Iterator[Workspace | None]:
    """Run the page with the session's workspace active for tlviz's folder functions."""
    with workspaces.active(session()) as ws:
        yield ws


def fragment(fn: Callable | None = None, **kwargs) -> Callable:
    """``st.fragment`` whose own reruns (which do not go through app.py) also run with the
    session's workspace active: use it instead of ``st.fragment``."""
    def wrap(f: Callable) -> Callable:
        @functools.wraps(f)
        def inside(*args, **kw):
            with activated():
                return f(*args, **kw)
        return st.fragment(inside, **kwargs)
    return wrap(fn) if fn is not None else wrap


def read_only() -> bool:
    """True in a shared view (nothing may be written)."""
    ws = session()
    return ws is not None and ws.read_only


def writable(what: str) -> bool:
    """True when this session may write; else a one-line note saying why not."""
    ws = session()
    if ws is None or not ws.read_only:
        return True
    st.info(f":material/visibility: This is a shared view, read-only: you cannot {what} "
            "here. *Back to my workspace* in the sidebar returns to your own.")
    return False


def _delete() -> None:
    from ui import cache, jobs

    ws = session()
    for key in [k for k in st.session_state if str(k).startswith("job.")]:
        jobs.request_stop(key[4:])  # its results were about data that is going away
        jobs.forget(key[4:])
    summary = workspaces.delete(ws)
    st.session_state.pop(_TOKEN, None)
    cache.refresh_datasets()
    cache.forget_predictors()
    names = ", ".join(summary["datasets"]) or "no datasets"
    st.session_state["ws.deleted"] = (
        f"Deleted {summary['bytes'] / 2**20:,.1f} MB: {names}; {summary['runs']} run(s); "
        f"{summary['notes']} note(s). A new, empty workspace was started.")


def _remember(token: str) -> None:
    """Keep ``token`` in a session cookie of this browser (gone when the browser closes:
    on a shared lab machine the next person starts fresh), so that a reload or a second tab
    opens the same workspace. Streamlit reads cookies but cannot set them: a zero-height
    component of the same origin does."""
    if not workspaces.is_token(token) or _cookie() == token:
        return
    st.components.v1.html(  # the token has a token's shape (checked): nothing else is put in here
        "<script>const s = parent.location.protocol === 'https:' ? '; Secure' : '';"
        f"parent.document.cookie = '{COOKIE}={token}; path=/; SameSite=Strict' + s;</script>",
        height=0)


def sidebar(dataset: str | None = None) -> None:
    """The sidebar's workspace box (classroom mode only)."""
    ws = session()
    if ws is None:
        return
    if not ws.read_only:
        with st.sidebar:
            _remember(st.session_state[_TOKEN])
    with st.sidebar.expander("Workspace", icon=":material/lock:"):
        if msg := st.session_state.pop("ws.deleted", None):
            st.success(msg)
        if ws.read_only:
            st.caption("A shared view, read-only: someone's datasets and runs; you cannot "
                       "train, upload or delete here.")
            if st.button("Back to my workspace", key="ws.back"):
                state.set("view", "", default="")
                st.rerun()
            return
        lim, used = workspaces.limits(), workspaces.usage(ws)
        st.caption(f"Private to this browser until it closes: your uploads, notes and runs. "
                   f"{used['bytes'] / 2**20:,.1f} of {lim['mb']:,.0f} MB · "
                   f"{used['images']:,} of {lim['images']:,} images.")
        token = st.session_state[_TOKEN]
        if st.button("Share this view", key="ws.share", icon=":material/share:", width="stretch",
                     help="Puts a read-only link to this workspace in the address bar."):
            state.set("view", workspaces.share_token(token), default="")
            st.toast("The address bar now holds a read-only link to your workspace.")
        with st.popover("My key", width="stretch"):
            st.caption("Keep it to reopen this workspace from another tab (anyone with it "
                       "can change your data):")
            st.code(token, language=None)
            other = st.text_input("Open a workspace by its key", type="password", key="ws.key")
            if st.button("Open", key="ws.open") and other:
                try:
                    workspaces.open_token(other)
                    st.session_state[_TOKEN] = other
                    st.rerun()
                except BadInput as e:
                    st.error(esc(e))
        _presenter(ws, dataset)
        sure = st.checkbox("Yes, delete all my data", key="ws.sure")
        st.button("Delete my data now", key="ws.delete", disabled=not sure, on_click=_delete,
                  icon=":material/delete_forever:", width="stretch")


def _presenter(ws: Workspace, dataset: str | None) -> None:
    if not st.session_state.get(_PRESENTER):
        key = st.text_input("Presenter key", type="password", key="ws.presenter_key",
                            help="Printed in the server's log when it started: lets you "
                                 "publish a dataset (here) or runs (on Compare) to everyone.")
        if key:
            if workspaces.is_presenter(key):
                st.session_state[_PRESENTER] = True
                st.rerun()
            st.caption("That is not the presenter key.")
        return
    if dataset and (ws.datasets_dir / dataset).is_dir():
        if st.button(f"Publish '{dataset}' to everyone", key="ws.publish"):
            from ui import cache

            workspaces.publish_dataset(ws, dataset, workspaces.presenter_token())
            cache.refresh_datasets()
            st.toast(f"Published {dataset}: every session lists it now.")
    else:
        st.caption("Presenter: pick one of your own datasets to publish it.")


def presenting() -> bool:
    """True when this session gave the presenter key (classroom mode, own workspace)."""
    ws = session()
    return ws is not None and not ws.read_only and bool(st.session_state.get(_PRESENTER))


def publish_runs(run_ids: list[int]) -> list[int]:
    """Copy this workspace's completed runs to the published ledger; their new ids (new
    ids: no loaded predictor is stale, so every session keeps its own)."""
    return [workspaces.publish_run(session(), int(i), workspaces.presenter_token())
            for i in run_ids]
