"""Experiment slugs: the one rule every command checks before it names a file, a branch or a worktree."""

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
