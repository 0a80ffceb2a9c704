"""User and file-system text inside Streamlit markdown: shown literally, never interpreted."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def esc(text: object) -> str:
    """``text`` with every markdown/LaTeX/emoji-shortcode character backslash-escaped.

    >>> esc("a_b $x$ <i>")
    'a\\\\_b \\\\$x\\\\$ \\\\<i\\\\>'
    """
    return _SPECIAL.sub(r"\\\1", str(text))
