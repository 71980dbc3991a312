"""lab/tables.py, the one table printer: widths from the widest cell, numbers right-justified, no trailing blanks.

Pure Python, milliseconds. Run: `just test tests/unit/test_tables.py`.
"""

from __future__ import annotations

from lab import tables


def test_columns_take_their_widest_cell_and_the_last_is_not_padded():
    assert tables.aligned([("a", "long-slug", "x"), ("bbb", "s", "a longer last cell")]) == [
        "a    long-slug  x",
        "bbb  s          a longer last cell"]


def test_right_columns_line_up_their_last_digits_the_last_one_too():
    assert tables.aligned([("run", "seed", "val_bpb"), ("a", "0", "2.5"), ("b", "10", "2.4375")], right={1, 2}) == [
        "run  seed  val_bpb",
        "a       0      2.5",
        "b      10   2.4375"]


def test_empty_cells_leave_no_trailing_blanks_and_no_rows_print_nothing():
    assert tables.aligned([("a", "b", ""), ("cc", "", "")]) == ["a   b", "cc"]
    assert tables.aligned([]) == []
