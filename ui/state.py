"""Typed session state, kept in ``st.session_state`` and mirrored in ``st.query_params``.

Every choice that should survive a page switch or be shareable as a link has a *name*
(``"dataset"``, ``"backbone"``, ``"method"``...). Its value is read from the session,
else from the URL query string, else a default; writing it updates both. The type of
the default decides how a query-string value is parsed (str, int, float, bool, list[str]).

Widgets bind to a name with :func:`widget`, which returns the ``key``/``on_change``
arguments so the widget shows the stored value and writes changes back::

    method = st.radio("Projection", METHODS, **state.widget("method", "umap", METHODS))

Widget keys are ``"w.<name>"`` (``at.radio(key="w.method")`` in AppTest).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")

_PREFIX = "s."  # session_state key of a stored value
_WIDGET = "w."  # session_state key of the widget bound to it


MAX_URL_CHARS = 200  # a longer query-string value is hostile, not a choice
MAX_URL_ITEMS = 64
INT_BOUNDS = (0, 1_000_000)  # every integer choice of the app is a count or a seed
_REJECTED = "state.rejected"  # session_state: (name, value digest) already reported


def _text_ok(s: str) -> bool:
    """Short, and free of control characters (NUL, newlines, bidi overrides...)."""
    import unicodedata

    return len(s) <= MAX_URL_CHARS and not any(unicodedata.category(ch)[0] == "C" for ch in s)


def _parse(raw: Any, default: T) -> T | None:
    """A query-string value as the type of ``default`` (None when it does not parse, or is
    over-long, holds control characters, or is a non-finite number)."""
    import math

    try:
        if isinstance(default, list | tuple):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            items = [str(x) for x in items if str(x)]
            if len(items) > MAX_URL_ITEMS or not all(_text_ok(x) for x in items):
                return None
            return items
        if isinstance(raw, list):  # ?x=1&x=2 where one value is expected
            return None
        raw = str(raw)
        if not _text_ok(raw):
            return None
        if isinstance(default, bool):
            s = raw.lower()
            return True if s in ("1", "true", "yes", "on") else False if s in ("0", "false", "no", "off") else None
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            value = float(raw)
            return value if math.isfinite(value) else None
        return raw
    except (TypeError, ValueError):
        return None


def _allowed(value: Any, default: Any, options: Sequence | None,
             bounds: tuple[float, float] | None, max_items: int | None = None,
             valid: Callable[[str], bool] | None = None) -> bool:
    """Whether a value read from the URL may be used: strings and lists only from
    ``options``, numbers only inside ``bounds`` (integers inside :data:`INT_BOUNDS` when no
    bounds are given)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if valid is not None:  # free text, but only of a shape the caller checks (a token)
        return isinstance(value, str) and bool(valid(value))
    if isinstance(value, list) and options is None and bounds is not None:  # integers in range
        try:
            ints = [int(v) for v in value]
        except (TypeError, ValueError):
            return False
        return (max_items is None or len(ints) <= max_items) \
            and all(bounds[0] <= i <= bounds[1] for i in ints)
    if options is not None:
        opts = list(options)
        texts = {str(o) for o in opts}
        if isinstance(value, list):
            return (max_items is None or len(value) <= max_items) \
                and all(v in opts or v in texts for v in value)
        return value in opts or (isinstance(value, str) and value in texts)
    if isinstance(default, int | float):
        lo, hi = bounds if bounds is not None else INT_BOUNDS if isinstance(default, int) else (-1e9, 1e9)
        return isinstance(value, int | float) and lo <= value <= hi
    return False  # free text from a link is never used


def _reject(name: str, raw: Any) -> None:
    """Tell the user once (per parameter and value) that the link's value was not used."""
    import hashlib

    seen = st.session_state.setdefault(_REJECTED, builtins.set())  # set() is ours here
    mark = (name, hashlib.sha1(repr(raw).encode("utf-8", "replace")).hexdigest())
    if mark in seen:
        return
    seen.add(mark)
    # the value itself is not echoed: it may be long, odd or a path nobody should see
    st.toast(f"The link's value for '{name}' is not one this app offers: using the default.",
             icon=":material/link_off:", duration="infinite")  # stays until closed: not missed


def rejected(name: str) -> bool:
    """True when a link's value for ``name`` was refused in this session."""
    return any(n == name for n, _ in st.session_state.get(_REJECTED, ()))


def _to_query(value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def get(name: str, default: T, options: Sequence | None = None,
        bounds: tuple[float, float] | None = None, max_items: int | None = None,
        valid: Callable[[str], bool] | None = None) -> T:
    """The stored value of ``name``: session, else URL query string, else ``default``.

    A link is hostile input: its value is used only when it parses as the default's type,
    is short and free of control characters, and is one of ``options`` (strings, lists)
    or inside ``bounds`` (numbers; integers default to :data:`INT_BOUNDS`). Anything else
    falls back to ``default`` with a one-line notice, and touches nothing. ``valid``: a
    string default's values are those this check accepts (a token of a fixed shape).

    With ``options`` a value outside them (a stale link, a dataset that went away)
    falls back to ``default`` (or the first option when ``default`` is not one either);
    with ``bounds`` (lo, hi) a number outside them falls back to ``default``.
    """
    if _PREFIX + name in st.session_state:
        value = st.session_state[_PREFIX + name]
    elif name in st.query_params:
        raw = st.query_params.get_all(name)
        if len(raw) == 1:
            raw = raw[0]
        value = _parse(raw, default)
        if value is None or not _allowed(value, default, options, bounds, max_items, valid):
            _reject(name, raw)
            value = default
    else:
        value = default
    if options is not None:
        opts = list(options)
        by_text = {str(o): o for o in opts}  # a link's "3" is the option 3 of ["auto", 1, 3]
        if isinstance(value, list):
            value = [by_text.get(str(v), v) for v in value]
            value = [v for v in value if v in opts][:max_items] or default
        elif value not in opts:
            value = by_text.get(str(value), default if default in opts or not opts else opts[0])
    if isinstance(value, list) and options is None and bounds is not None:  # a list of indices
        ints = [int(v) for v in value if str(v).lstrip("-").isdigit()]
        ok = [i for i in ints if bounds[0] <= i <= bounds[1]]  # (a link's length: _allowed)
        return ok if len(ok) == len(value) else default
    if bounds is not None and not (isinstance(value, int | float) and bounds[0] <= value <= bounds[1]):
        value = default
    return value


def set(name: str, value: Any, *, url: bool = True, default: Any = None) -> None:  # noqa: A001
    """Store ``value`` under ``name``, and in the URL unless ``url=False``.

    A value equal to ``default`` is left out of the URL, keeping links short.
    """
    st.session_state[_PREFIX + name] = value
    if not url:
        return
    if default is not None and value == default:
        if name in st.query_params:
            del st.query_params[name]
        return
    q = _to_query(value)
    if st.query_params.get(name) != q:
        st.query_params[name] = q


def sync(name: str, default: T, options: Sequence | None = None,
         bounds: tuple[float, float] | None = None, max_items: int | None = None) -> T:
    """Read ``name`` and write it back, so the URL shows it on this page too."""
    value = get(name, default, options, bounds, max_items)
    set(name, value, default=default)
    return value


def _copy_from_widget(name: str, default: Any = None) -> None:
    set(name, st.session_state[_WIDGET + name], default=default)


def widget(name: str, default: Any, options: Sequence | None = None,
           bounds: tuple[float, float] | None = None, max_items: int | None = None) -> dict[str, Any]:
    """Keyword arguments binding a widget to ``name``: ``key``, ``on_change``, ``args``.

    Call it just before creating the widget and do not pass ``value``/``index`` too: the
    widget takes the stored value from the session. The URL is updated as well. Give
    ``options`` (select widgets) or ``bounds`` (sliders, number inputs) so that a stale or
    hand-edited link falls back to the default instead of failing.
    """
    value = sync(name, default, options, bounds, max_items)
    st.session_state[_WIDGET + name] = value
    return {"key": _WIDGET + name, "on_change": _copy_from_widget, "args": (name, default)}


def widget_key(name: str) -> str:
    """The session-state key of the widget bound to ``name`` (for tests and callbacks)."""
    return _WIDGET + name


# ----------------------------------------------------------------------------- the shared choices


def default_dataset() -> str:
    """The starting dataset (``TLVIZ_DEFAULT_DATASET``, e.g. the one a teacher demos)."""
    from tlviz import config

    return config.default_dataset()


def default_backbone() -> str:
    """The starting backbone (``TLVIZ_DEFAULT_BACKBONE``)."""
    from tlviz import config

    return config.default_backbone()


def dataset(offered: Sequence[str]) -> str:
    """The chosen dataset: one of the ``offered`` names (never a path), else the default."""
    return get("dataset", default_dataset(), offered)


def backbone(registered: Sequence[str]) -> str:
    """The chosen backbone: one of the ``registered`` names, else the default."""
    return get("backbone", default_backbone(), registered)


def presenter() -> bool:
    """True in presenter mode: bigger text, advanced controls hidden."""
    return bool(get("presenter", False))


def seed() -> int:
    """The dataset split seed (advanced; 0 by default)."""
    return int(get("seed", 0))


def augment() -> dict | None:
    """The augmentation set on the Augmentation page (``AugmentConfig.to_dict()``), or None."""
    value = st.session_state.get(_PREFIX + "augment")
    return dict(value) if value else None
