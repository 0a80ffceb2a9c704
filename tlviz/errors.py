"""One error root for everything tlviz refuses: catch :class:`TlvizError` once.

Each subclass also derives from the built-in exception its callers used to catch
(``ValueError`` for bad input, ``KeyError`` for unknown names...), so existing handlers keep
working. The CLI turns a ``TlvizError`` into one line and exit code 2; pages show it with
``st.error``.
"""

from __future__ import annotations


class TlvizError(Exception):
    """Anything tlviz refuses or cannot do, with a message that says what to do."""

    def __str__(self) -> str:  # KeyError would quote its message: keep it readable
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class BadInput(TlvizError, ValueError):
    """An input (image, archive, dataset, option value) that tlviz will not use."""


class UnknownName(BadInput, KeyError):
    """A backbone, dataset, head, mode or run name that is not registered (a ``KeyError``
    and a ``ValueError`` as well, for callers of either kind)."""


class WeightsUnavailable(TlvizError, RuntimeError):
    """Pretrained weights are not on this machine; the message says what to put where."""


class Cancelled(TlvizError):
    """A run stopped on request (the Stop button, a cancelled job)."""


__all__ = ["BadInput", "Cancelled", "TlvizError", "UnknownName", "WeightsUnavailable"]
