"""Project instructions are Markdown written by researchers and shown to crowdworkers. markdown-it-py
renders CommonMark with raw HTML turned off (it is shown as text) and refuses javascript:, vbscript:,
file: and data: links; headings move down two levels to sit below the page's own."""

from __future__ import annotations

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def _heading_open(renderer, tokens, index, options, env):
    token = tokens[index]
    level = min(int(token.tag[1]) + 2, 6)
    return f"<h{level}>"


def _heading_close(renderer, tokens, index, options, env):
    level = min(int(tokens[index].tag[1]) + 2, 6)
    return f"</h{level}>\n"


_renderer.add_render_rule("heading_open", _heading_open)
_renderer.add_render_rule("heading_close", _heading_close)


def render_markdown(source: str) -> SafeString:
    # Safe: with html disabled markdown-it escapes every character of the source it does not turn
    # into its own tags, and validates link addresses.
    return mark_safe(_renderer.render(source or ""))  # noqa: S308
