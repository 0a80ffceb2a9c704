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

from collections.abc import Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")

DEFAULT_DATASET = "digits"
DEFAULT_BACKBONE = "mobilenet_v2"
_PREFIX = "s."  # session_state key of a stored value
_WIDGET = "w."  # session_state key of the widget bound to it


def _parse(raw: Any, default: T) -> T | None:
    """A query-string value as the type of ``default`` (None when it does not parse)."""
    try:
        if isinstance(default, bool):
            s = str(raw).lower()
            return True if s in ("1", "true", "yes", "on") else False if s in ("0", "false", "no", "off") else None
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, list | tuple):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return [str(x) for x in items if str(x)]
        return str(raw)
    except (TypeError, ValueError):
        return None


def _to_query(value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def get(name: str, default: T, options: Sequence | None = None,
        bounds: tuple[float, float] | None = None) -> T:
    """The stored value of ``name``: session, else URL query string, else ``default``.

    With ``options`` a value outside them (a stale link, a dataset that went away)
    falls back to ``default`` (or the first option when ``default`` is not one either);
    with ``bounds`` (lo, hi) a number outside them falls back to ``default``.
    """
    if _PREFIX + name in st.session_state:
        value = st.session_state[_PREFIX + name]
    elif name in st.query_params:
        raw = st.query_params.get_all(name) if isinstance(default, list | tuple) else st.query_params[name]
        if isinstance(raw, list) and len(raw) == 1:
            raw = raw[0]
        value = _parse(raw, default)
        value = default if value is None else value
    else:
        value = default
    if options is not None:
        opts = list(options)
        if isinstance(value, list):
            value = [v for v in value if v in opts] or default
        elif value not in opts:
            value = default if default in opts or not opts else opts[0]
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
         bounds: tuple[float, float] | None = None) -> T:
    """Read ``name`` and write it back, so the URL shows it on this page too."""
    value = get(name, default, options, bounds)
    set(name, value, default=default)
    return value


def _copy_from_widget(name: str, default: Any = None) -> None:
    set(name, st.session_state[_WIDGET + name], default=default)


def widget(name: str, default: Any, options: Sequence | None = None,
           bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Keyword arguments binding a widget to ``name``: ``key``, ``on_change``, ``args``.

    Call it just before creating the widget and do not pass ``value``/``index`` too: the
    widget takes the stored value from the session. The URL is updated as well. Give
    ``options`` (select widgets) or ``bounds`` (sliders, number inputs) so that a stale or
    hand-edited link falls back to the default instead of failing.
    """
    value = sync(name, default, options, bounds)
    st.session_state[_WIDGET + name] = value
    return {"key": _WIDGET + name, "on_change": _copy_from_widget, "args": (name, default)}


def widget_key(name: str) -> str:
    """The session-state key of the widget bound to ``name`` (for tests and callbacks)."""
    return _WIDGET + name


# ----------------------------------------------------------------------------- the shared choices


def dataset() -> str:
    """The chosen dataset reference (a registered name, folder or zip path)."""
    return get("dataset", DEFAULT_DATASET)


def backbone() -> str:
    """The chosen backbone name."""
    return get("backbone", DEFAULT_BACKBONE)


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
