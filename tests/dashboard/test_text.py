"""dashboard.text.plain: markdown shows user data literally (rendered with markdown-it,
CommonMark as Streamlit's renderer implements it)."""

from __future__ import annotations

import re

import pytest
from markdown_it import MarkdownIt

from dashboard.text import WORD_JOINER, plain

HOSTILE = [
    "![x](http://127.0.0.1:9/track.png)",
    "[click](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` ~~gone~~",
    "# heading",
    "- item",
    "1. first",
    "> quote",
    ":red[alarm] :material/warning: $x^2$",
    "http://127.0.0.1:9/autolink and <http://127.0.0.1:9/>",
    "a\\*b back\\slash",
    "line one\nline two",
    "&amp; &lt;b&gt;",
    "www.example.org and mail alice@example.com",
]


def _render(text: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_plain_renders_no_markup(text) -> None:
    html = _render(plain(text))
    for tag in ("<img", "<a ", "<strong", "<em", "<code", "<h1", "<ul", "<ol", "<blockquote",
                "<s>", "<del"):
        assert tag not in html, (text, html)
    # no autolink either: GFM links bare URLs, www. names and e-mail addresses
    assert not re.search(r"\w://|www\.|\w@", plain(text).replace("\\", ""), re.I)
    # and the text reads as it was written (markdown-it escapes &, < and > for HTML)
    shown = (html.removeprefix("<p>").removesuffix("</p>\n").replace("<br />\n", "\n")
             .replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
             .replace("&amp;", "&").replace(WORD_JOINER, ""))
    assert shown == text


def test_unescaped_markdown_would_render_an_image() -> None:
    # The renderer above is a fair judge: without plain(), the header becomes an image.
    assert "<img" in _render(HOSTILE[0])
