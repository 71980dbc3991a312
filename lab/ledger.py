"""The ledger (results.tsv): one validated row per run, appended under a lock, never rewritten.

Import-light on purpose (stdlib only): eval.py, hooks and the guard all read it.
"""

from __future__ import annotations

import fcntl
import gc
import math
import os
import re
from collections import namedtuple
from datetime import UTC, date, datetime
from functools import cache
from itertools import repeat

FILENAME = "results.tsv"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # the `time` column, and every UTC time lab records: UTC, to the second
STATUSES = ("ok", "crash", "timeout", "invalid", "killed")

# Column -> kind. Order is the file's column order; groups: identity, outcome, queue, provenance, grader.
# Columns are only ever added at the end: an earlier header is a prefix of this one (EARLIER_WIDTHS).
SCHEMA: dict[str, str] = {
    "run_id": "id", "time": "time", "slug": "id", "branch": "text", "commit": "hex?", "dirty": "bool",
    "status": "status", "reason": "text", "val_bpb": "float?", "train_s": "float?", "wall_s": "float",
    "steps": "int?", "tokens": "int?", "params": "int?", "peak_mem_mb": "float?",
    "pueue_task": "int?", "label": "text", "predicted_delta": "float?",
    "seed": "int", "budget_s": "float", "max_steps": "int?", "device": "text", "host": "text",
    "eval_sha": "hex?", "prepare_sha": "hex?", "train_sha": "hex?", "data_sha": "hex?",
    "sandbox": "text", "train_wall_s": "float?",  # how eval.py trained (`bwrap 0.8.0` or `none`) and the wall time it measured
    "config": "text",  # train_info.json's config_line: the preset and sizes train.py chose (e.g. `cuda: 12L 768d …`)
    # protected mode (lab/grader/protect.py): the model.pt2 graded, the installed grader's commit, Ed25519 over the rest
    "artifact_sha": "hex?", "grader_sha": "hex?", "signature": "sig?",
}
COLUMNS = tuple(SCHEMA)
HEADER = "\t".join(COLUMNS) + "\n"
# Widths of earlier schemas. A ledger keeps the header it was created with (its bytes never change);
# its lines have that width or the current one, and the columns a line lacks read as empty.
EARLIER_WIDTHS = (27, 29)
HEADERS = (HEADER, *("\t".join(COLUMNS[:w]) + "\n" for w in EARLIER_WIDTHS))


def utc_now(moment: datetime | None = None) -> str:
    """`moment` (default: now) as the `time` column holds it."""
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime(TIME_FORMAT)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_FLOAT = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
# The one validator: kind -> (the pattern a valid non-empty cell matches, why a cell that does not is bad).
# "text" takes any text. parse_line checks a line cell by cell with these; read() checks a clean ledger column
# by column with the same patterns. A time's date is checked apart (strptime, once per day): see _is_date.
_KINDS = {
    "id": (_ID.pattern, "is not an identifier (letters, digits, '.', '_', '-')"),
    "time": (r"\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ", "is not a UTC time like 2026-01-31T12:00:00Z"),
    "hex": (r"[0-9a-f]{7,64}", "is not a lowercase hex hash"),
    "sig": (r"[0-9a-f]{128}", "is not an Ed25519 signature (128 lowercase hex digits)"),
    "bool": ("[01]", "is not 0 or 1"),
    "status": ("|".join(STATUSES), f"is not a status (one of {', '.join(STATUSES)})"),
    "int": (r"-?\d+", "is not an integer"),
    "float": (_FLOAT, "is not a finite decimal number"),
}
# Closes off a line torn by a writer that died mid-append. A cell holding a bad escape can never
# parse, whatever the fragment ended with, so the fragment stays one reported bad line.
TORN_MARK = "\t\\!torn"
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


class LedgerError(ValueError):
    """A ledger line or row breaks the schema; the message names file, line and field."""


class Problem(namedtuple("Problem", "path line field message")):
    """One bad line: the file, its 1-based line number, the field ('' for the whole line) and why."""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" + (f" field {self.field!r}" if self.field else "")
        return f"{where}: {self.message}"


def ledger_path(cwd: str | os.PathLike = ".") -> os.PathLike:
    """The root checkout's results.tsv, also when called from a worktree."""
    from lab import gitx  # not at the top: hooks import this module and never spawn git through it

    return gitx.root_checkout(cwd) / FILENAME


def escape(text: str) -> str:
    return "".join(_ESCAPES.get(c, c) for c in text)


def unescape(text: str) -> str:
    out, chars = [], iter(text)
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            if nxt not in _UNESCAPES:
                raise ValueError(f"bad escape '\\{nxt}'")
            c = _UNESCAPES[nxt]
        out.append(c)
    return "".join(out)


def _check_value(kind: str, value: str) -> str | None:
    """Why `value` is not a valid `kind`, or None."""
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value == "":
        return None if optional or kind == "text" else "is empty but required"
    if kind == "text":
        return None
    if not _pattern(kind).fullmatch(value) or (kind == "time" and not _is_date(value[:10])):
        return f"{value!r} {_KINDS[kind][1]}"
    return None


@cache
def _pattern(kind: str) -> re.Pattern:
    """A valid cell of `kind` (also '' where the kind ends in '?'), compiled on first use: hooks import this module."""
    pattern = _KINDS[kind.rstrip("?")][0]
    return re.compile(f"(?:{pattern})?" if kind.endswith("?") else pattern)


@cache
def _is_date(day: str) -> bool:
    """Whether a time's YYYY-MM-DD part (its shape checked already) is a calendar date (2026-02-30 is not)."""
    try:
        return bool(date.fromisoformat(day))  # not strptime: its first call costs a locale set-up
    except ValueError:
        return False


def _row_problems(row: dict[str, str]) -> list[tuple[str, str]]:
    """(field, message) for every schema violation of an unescaped row."""
    problems = [(col, msg) for col, kind in SCHEMA.items() if (msg := _check_value(kind, row[col]))]
    if row["status"] == "ok" and row["val_bpb"] == "":
        problems.append(("val_bpb", "is empty but status is ok"))
    if row["status"] in STATUSES[1:] and row["reason"] == "":
        problems.append(("reason", f"is empty but status is {row['status']}"))
    return problems


def format_row(row: dict[str, object]) -> str:
    """One escaped TSV line (with newline) for `row`; raises LedgerError if it breaks the schema."""
    unknown = set(row) - set(SCHEMA)
    if unknown:
        raise LedgerError(f"unknown ledger field(s) {sorted(unknown)}; columns are {', '.join(COLUMNS)}")
    text = {col: _to_text(row.get(col)) for col in COLUMNS}
    problems = _row_problems(text)
    if problems:
        raise LedgerError("; ".join(f"field {f!r}: {m}" for f, m in problems))
    return "\t".join(escape(text[col]) for col in COLUMNS) + "\n"


def _to_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def append(row: dict[str, object], path: str | os.PathLike) -> None:
    """Append one row: validate, take an exclusive lock, write one whole line, fsync.

    A line left unterminated by a writer that died mid-append is closed off first with TORN_MARK,
    so it stays a single bad line that readers report instead of merging with this row.
    """
    _locked_append(path, lambda _fd, _size: [format_row(row)])


def append_new(rows: list[dict[str, object]], path: str | os.PathLike, unless=None) -> list[dict[str, object]]:
    """Append the rows whose run_id is not in the file yet, under the same lock as the check; returns them.
    `unless(row)`, if given, is asked under that lock too: a row it is true for is left out (its run is alive)."""
    if not rows:  # lab status asks on every call, with nothing to add: no lock, no read
        return []
    lines = [format_row(row) for row in rows]  # validate all before touching the file
    added: list[dict[str, object]] = []

    def missing(fd: int, size: int) -> list[str]:
        data = os.pread(fd, size, 0).decode("utf-8", "replace")
        seen = {line.split("\t", 1)[0] for line in data.splitlines()[1:]}
        for row, line in zip(rows, lines, strict=True):
            if str(row["run_id"]) not in seen and not (unless and unless(row)):
                seen.add(str(row["run_id"]))
                added.append(row)
                yield line

    _locked_append(path, lambda fd, size: list(missing(fd, size)))
    return added


def run_ids(path: str | os.PathLike) -> set[str]:
    """The run ids that have a row, read under the appenders' lock (shared): an append is seen whole or not at all."""
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        data = f.read().decode("utf-8", "replace")
    return {line.split("\t", 1)[0] for line in data.splitlines()[1:]}


def _locked_append(path: str | os.PathLike, lines_for) -> None:
    """Under an exclusive lock, write `lines_for(fd, size)` (escaped lines) as one write, then fsync."""
    if not os.path.exists(path):
        raise LedgerError(f"{path} does not exist: restore it with `git checkout -- {FILENAME}` in "
                          f"{os.path.dirname(os.path.abspath(path))}")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        header = os.pread(fd, len(HEADER.encode()), 0)
        if not any(header.startswith(h) for h in _HEADER_BYTES):
            raise LedgerError(f"{path}:1: header differs from the schema; expected columns: {', '.join(COLUMNS)}")
        data = "".join(lines_for(fd, size)).encode()
        if not data:
            return
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = (TORN_MARK + "\n").encode() + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the flock


_STATUS_AT = COLUMNS.index("status")
assert COLUMNS[_STATUS_AT: _STATUS_AT + 3] == ("status", "reason", "val_bpb")  # the outcome triple read() checks
_WIDTHS = (len(COLUMNS), *EARLIER_WIDTHS)
_HEADER_BYTES = tuple(h.encode() for h in HEADERS)


def parse_line(line: str) -> dict[str, str] | list[tuple[str, str]]:
    """A validated row, or the (field, message) problems of the line (without its newline)."""
    cells = line.split("\t")
    if len(cells) not in _WIDTHS:
        return [("", f"has {len(cells)} columns, expected {len(COLUMNS)}")]
    row = dict.fromkeys(COLUMNS, "")
    for col, cell in zip(COLUMNS, cells, strict=False):  # an earlier schema: fewer cells
        if "\r" in cell:  # the writer escapes it: a raw one is an editor's CRLF or a hand edit
            return [(col, "holds a raw carriage return (a CRLF line end?); lines end in \\n alone")]
        try:
            row[col] = unescape(cell)
        except ValueError as e:
            return [(col, str(e))]
    return _row_problems(row) or row


def _clean_rows(body: str) -> list[dict[str, str]] | None:
    """The rows of a ledger's body (the lines after its header) if every one is valid, checked column by column
    with parse_line's patterns: lab status reads 100k rows. None: read() goes line by line and names the problems."""
    if "\r" in body:  # a raw carriage return: parse_line names its cell
        return None
    lines = body.split("\n")[:-1]
    if not lines:
        return []
    width = len(COLUMNS)
    tabs = {line.count("\t") for line in lines}
    if not tabs <= {w - 1 for w in _WIDTHS}:
        return None
    if tabs != {width - 1}:  # lines of an earlier schema lack the later columns: they read as empty
        body = "".join(line + "\t" * (width - 1 - line.count("\t")) + "\n" for line in lines)
    cells = body.replace("\n", "\t").split("\t")  # one flat list: no list per line for the GC to walk
    cells.pop()  # after the last newline
    columns = [cells[i::width] for i in range(width)]
    for kind, column in zip(SCHEMA.values(), columns, strict=False):
        if kind == "text":
            continue  # any text; its escapes are checked as the rows are unescaped, below
        values = set(column)  # columns repeat themselves (device, seed, hashes): each value is checked once
        if not all(map(_pattern(kind).fullmatch, values)):
            return None
        if kind == "time" and not all(map(_is_date, {value[:10] for value in values})):
            return None
    status, reason, val_bpb = columns[_STATUS_AT: _STATUS_AT + 3]
    if not all(value if s == "ok" else why for s, why, value in zip(status, reason, val_bpb, strict=True)):
        return None  # an ok row without its metric, or another status without its reason
    if "\\" in body:  # only text holds escapes: no other kind's pattern takes a backslash
        try:
            for i, kind in enumerate(SCHEMA.values()):
                if kind == "text":
                    cells[i::width] = [unescape(cell) if "\\" in cell else cell for cell in columns[i]]
        except ValueError:  # a bad escape
            return None
    # `width` cells at a time, one dict each; the collector paused: 100k new dicts would set it off again and again
    was_on = gc.isenabled()
    gc.disable()
    try:
        return list(map(dict, map(zip, repeat(COLUMNS), zip(*[iter(cells)] * width, strict=True))))
    finally:
        if was_on:
            gc.enable()


def read(path: str | os.PathLike) -> tuple[list[dict[str, str]], list[Problem]]:
    """All valid rows and every problem (bad header, bad line, torn last line), in file order."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return [], [Problem(path, 1, "", "file is empty; the first line must be the header")]
    header = data[: data.find(b"\n") + 1]
    if header in _HEADER_BYTES and data.endswith(b"\n"):  # fast path for a clean ledger: lab status on 100k rows
        try:
            rows = _clean_rows(data[len(header):].decode())
        except UnicodeDecodeError:
            rows = None
        if rows is not None:
            return rows, []
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline
    rows: list[dict[str, str]] = []
    problems: list[Problem] = []
    if lines and lines[0] + b"\n" not in _HEADER_BYTES:
        problems.append(Problem(path, 1, "", f"header differs from the schema; expected: {HEADER.strip()!r}"))
    for number, raw in enumerate(lines[1:], start=2):
        if raw.endswith(TORN_MARK.encode()):
            problems.append(Problem(path, number, "", "torn line: a writer died mid-append "
                                    "(closed off by a later append); ignored"))
            continue
        try:
            result = parse_line(raw.decode())
        except UnicodeDecodeError:
            result = [("", "is not valid UTF-8")]
        if isinstance(result, dict):
            rows.append(result)
        else:
            problems += [Problem(path, number, f, m) for f, m in result]
    if torn:
        problems.append(Problem(path, len(lines) + 1, "",
                                f"torn last line ({len(torn)} bytes, no newline): a writer died mid-append; ignored"))
    return rows, problems


def read_strict(path: str | os.PathLike) -> list[dict[str, str]]:
    """All rows; raises LedgerError naming the first bad line."""
    rows, problems = read(path)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise LedgerError(f"{problems[0]}{more}")
    return rows
