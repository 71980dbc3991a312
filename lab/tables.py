"""The one plain-text table printer: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from collections.abc import Collection, Sequence


def aligned(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    """One line per row. Columns in `right` (numbers) are right-justified; the rest left-justified, the last
    one unpadded. No trailing blanks."""
    if not rows:
        return []
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    last = len(widths) - 1

    def pad(c: int, cell: str) -> str:
        if c in right:
            return cell.rjust(widths[c])
        return cell.ljust(widths[c]) if c < last else cell

    return ["  ".join(pad(c, cell) for c, cell in enumerate(row)).rstrip() for row in rows]
