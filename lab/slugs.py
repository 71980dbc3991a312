"""Names: the one slug rule (files, branches, worktrees) and the one title rule (ideas, journal entries)."""

from __future__ import annotations

import re

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")


class SlugError(ValueError):
    """A slug that cannot name a file, branch and worktree; the message says why and what is allowed."""


def check(slug: str) -> str:
    """`slug` itself if it is 1-40 lowercase ASCII letters, digits and inner dashes; else SlugError."""
    if not slug:
        raise SlugError("the slug is empty: use 1-40 lowercase letters, digits and '-', e.g. wider-mlp")
    if not slug.isascii():
        odd = next(c for c in slug if not c.isascii())
        raise SlugError(f"slug {slug!r} contains the non-ASCII character {odd!r} (U+{ord(odd):04X}): "
                        "use lowercase ASCII letters, digits and '-'")
    if not SLUG.fullmatch(slug):
        raise SlugError(f"slug {slug!r} is not 1-40 lowercase letters, digits and '-' (no spaces, '/', '.', '_', "
                        "and no '-' at either end), e.g. wider-mlp")
    return slug


class TitleError(ValueError):
    """A title that is empty, spans lines, is too long or holds control characters."""


def check_title(title: str, max_len: int, example: str, overflow: str) -> str:
    """The stripped one-line title; else TitleError (`example` shows a good title, `overflow` where long text goes)."""
    title = title.strip()
    if not title:
        raise TitleError(f"the title is empty: give a one-line title, e.g. {example!r}")
    if "\n" in title or "\r" in title:
        raise TitleError(f"the title {title!r} spans several lines; it must not be more than one line")
    if len(title) > max_len:
        raise TitleError(f"the title is {len(title)} characters, over {max_len}: shorten it ({overflow})")
    if not title.isprintable():
        raise TitleError(f"the title {title!r} holds control characters: use plain text")
    return title
