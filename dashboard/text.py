"""User data inside Streamlit's markdown, shown as the plain text it is.

``st.error``, ``st.info``, ``st.caption``, ``st.markdown`` … render markdown: a column header
``![x](http://host/t.png)`` quoted in a message would make the viewer's browser fetch that
URL, and a file name with ``**`` or ``:red[…]`` would restyle the page. Everything that
quotes user data (file names, column names, values, ids, messages built from them) goes
through :func:`plain` first; tables (``st.dataframe``) and ``st.text`` never render markdown.
"""

from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation character, which then shows as
# itself: no emphasis, link, image, code, HTML tag, autolink ('http\://'), LaTeX ('\$'),
# Streamlit directive (':red[…]', ':material/…:') or list/heading marker survives.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub-flavoured markdown also turns bare URLs, 'www.' names and e-mail addresses into
# links, after escapes are resolved: an invisible word joiner (U+2060) keeps them text.
_AUTOLINK = re.compile(r"(?<=\w)(?=://)|(?<=\bwww)(?=\.)|(?=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` escaped so that markdown shows it literally (line breaks kept)."""
    escaped = _PUNCTUATION.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, str(text)))
    # A line break inside a paragraph would be joined with a space; keep it as a break.
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")
