"""Tests for lab/ledger.py (results.tsv) and the root discovery it uses from lab/gitx.py.

What they test, against real files, real git repositories and real processes (no mocks):
  * round trip of rows whose free-text fields hold tabs, newlines, CR, backslashes, unicode, quotes, `$()`;
  * validation on write (LedgerError names the field, the file stays byte-identical);
  * validation on read (each bad line reported with its line number and field, good rows kept);
  * a torn last line (no trailing newline) is reported, never returned, and closed off by the next append;
  * 8 concurrent writer processes x 200 appends lose nothing and interleave nothing;
  * SIGKILL of a writer holding the lock mid-line, and of a tight append loop at random moments;
  * ledger_path() finds the root checkout's results.tsv from inside a linked git worktree;
  * appending to a missing file or a file with a wrong header fails without touching anything.

Cost: about 3 s on a 2-core machine (most of it Python start-up for the 13 subprocesses); fast set; needs `git` (>= 2.31)
on PATH, writes only under pytest's tmp_path, needs no GPU and no network.

Run:  just test tests/unit/test_ledger.py
"""

from __future__ import annotations

import fcntl
import gc
import inspect
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lab import gitx, ledger

REPO = Path(__file__).resolve().parents[2]
HEADER = ledger.HEADER.encode()


# ---------------------------------------------------------------------------------------------- helpers


def make_row(**overrides):
    """A valid ledger row (status ok); keyword arguments replace or add fields."""
    row = {
        "run_id": "r0001", "time": "2026-11-23T09:00:00Z", "slug": "baseline", "branch": "exp/baseline",
        "commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False,
        "status": "ok", "reason": "", "val_bpb": 0.9876, "train_s": 280.5, "wall_s": 301.25,
        "steps": 1000, "tokens": 524288000, "params": 124000000, "peak_mem_mb": 20480.0,
        "pueue_task": 7, "label": "baseline run", "predicted_delta": -0.01,
        "seed": 1337, "budget_s": 300.0, "max_steps": None, "device": "cuda:0", "host": "gpu-box-1",
        "eval_sha": "a" * 40, "prepare_sha": "b" * 40, "train_sha": "c" * 40, "data_sha": "d" * 64,
    }
    row.update(overrides)
    return row


def as_text(row):
    """What ledger.read returns for `row`: every column, as the string that was written."""
    def text(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, float):
            return repr(v)
        return str(v)
    return {col: text(row.get(col)) for col in ledger.COLUMNS}


def new_ledger(tmp_path: Path, *rows) -> Path:
    """results.tsv in tmp_path with the header and `rows` appended through ledger.append."""
    path = tmp_path / ledger.FILENAME
    path.write_bytes(HEADER)
    for row in rows:
        ledger.append(row, path)
    return path


def line_of(row) -> bytes:
    return ledger.format_row(row).encode()


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A Python subprocess running `code` (with make_row defined), stdout piped as text."""
    source = "import sys, os, time, fcntl\nfrom pathlib import Path\nfrom lab import ledger\n"
    source += inspect.getsource(make_row) + "\n" + inspect.cleandoc(code) + "\n"
    return subprocess.Popen([sys.executable, "-c", source, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(), cwd=REPO)


def wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    if line != "ready\n":
        proc.kill()
        raise AssertionError(f"child did not start: stdout {line!r}, stderr {proc.communicate()[1]!r}")


# ---------------------------------------------------------------------------------------------- 1. round trip

NASTY = [
    "tab\there", "new\nline", "cr\rhere", "crlf\r\n", "back\\slash", "literal \\n is not a newline",
    "literal \\t and \\\\ and \\r", "ends with a backslash\\", "\\", "\t", "\n", "unicode: ünïcödé 日本語 🚀 ∑",
    "quotes \"double\" 'single' `back`", "$(rm -rf /) ${HOME} `id` ; | & > <", "  spaces around  ",
    "line breaks for str.splitlines: \x0b \x0c \x1c \x85 \u2028 \u2029", "nul \x00 byte", "",
]


def test_round_trip_of_hostile_free_text(tmp_path):
    rows = [
        make_row(run_id=f"r{i}", status="crash" if i % 2 else "ok", val_bpb=None if i % 2 else 1.0 + i / 1000,
                 reason=text or "x", label=text, branch=text[::-1], host=text + "|host", device=text.upper())
        for i, text in enumerate(NASTY)
    ]
    path = new_ledger(tmp_path, *rows)

    got, problems = ledger.read(path)
    assert problems == []
    assert got == [as_text(r) for r in rows]
    assert ledger.read_strict(path) == got
    assert got[0]["reason"] == "tab\there" and got[0]["label"] == "tab\there"
    assert (got[1]["val_bpb"], got[1]["seed"], got[1]["dirty"], got[1]["max_steps"]) == ("", "1337", "0", "")

    data = path.read_bytes()
    assert data.startswith(HEADER) and data.endswith(b"\n")
    assert data.count(b"\n") == 1 + len(rows)  # exactly header + one line per row
    assert b"\r" not in data and data.count(b"\t") == (1 + len(rows)) * (len(ledger.COLUMNS) - 1)
    assert data == HEADER + b"".join(line_of(r) for r in rows)


def test_escaping_is_exact(tmp_path):
    path = new_ledger(tmp_path, make_row(reason="a\tb\nc\rd\\e\\n"))
    line = path.read_bytes()[len(HEADER):]
    cells = line.rstrip(b"\n").split(b"\t")
    assert cells[ledger.COLUMNS.index("reason")] == b"a\\tb\\nc\\rd\\\\e\\\\n"
    assert ledger.unescape("a\\tb\\nc\\rd\\\\e\\\\n") == "a\tb\nc\rd\\e\\n"


# ---------------------------------------------------------------------------------------------- 2. validation on write

BAD_WRITES = [
    ("bogus", {"bogus": "x"}),
    ("status", {"status": "great"}),
    ("status", {"status": "OK"}),
    ("val_bpb", {"status": "ok", "val_bpb": None}),
    ("val_bpb", {"status": "ok", "val_bpb": ""}),
    ("reason", {"status": "crash", "val_bpb": None, "reason": ""}),
    ("reason", {"status": "timeout", "reason": None}),
    ("val_bpb", {"val_bpb": float("nan")}),
    ("val_bpb", {"val_bpb": float("inf")}),
    ("val_bpb", {"val_bpb": float("-inf")}),
    ("val_bpb", {"val_bpb": "nan"}),
    ("val_bpb", {"val_bpb": "fast"}),
    ("seed", {"seed": 1.5}),
    ("seed", {"seed": "abc"}),
    ("seed", {"seed": None}),
    ("time", {"time": "2026-11-23 09:00:00"}),
    ("time", {"time": "2026-11-23T09:00:00+00:00"}),
    ("time", {"time": "2026-11-23T09:00:00"}),
    ("time", {"time": ""}),
    ("run_id", {"run_id": "has space"}),
    ("dirty", {"dirty": "yes"}),
    ("commit", {"commit": "ABCDEF0"}),
    ("wall_s", {"wall_s": None}),
]


@pytest.mark.parametrize(("field", "change"), BAD_WRITES, ids=[f"{f}-{c}" for f, c in BAD_WRITES])
def test_append_rejects_bad_row_and_leaves_file_unchanged(tmp_path, field, change):
    path = new_ledger(tmp_path, make_row(run_id="good1"), make_row(run_id="good2"))
    before = path.read_bytes()
    with pytest.raises(ledger.LedgerError) as err:
        ledger.append(make_row(**change), path)
    msg = str(err.value)
    if field == "bogus":
        assert "unknown ledger field(s) ['bogus']" in msg
    else:
        assert f"field {field!r}" in msg
        assert msg.count("field '") == 1, msg  # names exactly the bad field
    assert path.read_bytes() == before
    assert len(ledger.read_strict(path)) == 2


# ---------------------------------------------------------------------------------------------- 3. validation on read


def _replace_cell(line: bytes, col: str, value: bytes) -> bytes:
    cells = line.rstrip(b"\n").split(b"\t")
    cells[ledger.COLUMNS.index(col)] = value
    return b"\t".join(cells) + b"\n"


GOOD = line_of(make_row(run_id="before"))
BAD_LINES = {
    "bad-escape": (_replace_cell(GOOD, "reason", b"oops \\x here"), "reason", "bad escape '\\x'"),
    "trailing-backslash": (_replace_cell(GOOD, "label", b"ends\\"), "label", "bad escape '\\'"),
    "too-few-columns": (GOOD.rstrip(b"\n").rsplit(b"\t", 2)[0] + b"\n", "",  # 31: no schema's width
                        f"has {len(ledger.COLUMNS) - 2} columns, expected {len(ledger.COLUMNS)}"),
    "too-many-columns": (GOOD.rstrip(b"\n") + b"\textra\n", "", f"has {len(ledger.COLUMNS) + 1} columns, expected {len(ledger.COLUMNS)}"),
    "blank-line": (b"\n", "", f"has 1 columns, expected {len(ledger.COLUMNS)}"),
    "unknown-status": (_replace_cell(GOOD, "status", b"great"), "status", "'great' is not a status"),
    "non-numeric-metric": (_replace_cell(GOOD, "val_bpb", b"fast"), "val_bpb", "'fast' is not a finite decimal number"),
    "inf-metric": (_replace_cell(GOOD, "wall_s", b"inf"), "wall_s", "'inf' is not a finite decimal number"),
    "non-integer-seed": (_replace_cell(GOOD, "seed", b"1.5"), "seed", "'1.5' is not an integer"),
    "crlf-line-end": (GOOD.rstrip(b"\n") + b"\r\n", ledger.COLUMNS[-1], "holds a raw carriage return"),
    "non-utf8": (_replace_cell(GOOD, "reason", b"caf\xe9 \xff\xfe"), "", "is not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_read_reports_bad_line_with_number_and_field(tmp_path, case):
    bad, field, message = BAD_LINES[case]
    after = line_of(make_row(run_id="after", seed=2))
    path = tmp_path / ledger.FILENAME
    path.write_bytes(HEADER + GOOD + bad + after)

    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["before", "after"]
    assert len(problems) == 1, problems
    (p,) = problems
    assert (p.path, p.line, p.field) == (path, 3, field)
    assert message in p.message, p.message
    assert str(p).startswith(f"{path}:3" + (f" field {field!r}" if field else "") + ": ")
    with pytest.raises(ledger.LedgerError) as err:
        ledger.read_strict(path)
    assert str(err.value) == str(p)
    assert "results.tsv:3" in str(err.value)


# One bad cell each, a rule of every kind: read() checks a clean ledger column by column and parse_line a line
# cell by cell with the same patterns, so a cell that slips past one of them would show up here.
ONE_BAD_CELL = [("time", b"2026-02-30T09:00:00Z"), ("time", b"2026-11-23T24:00:00Z"), ("time", b"2026-11-23 09:00:00Z"),
                ("run_id", b"-r1"), ("commit", b"ABCDEF0"), ("commit", b"abc"), ("dirty", b"2"), ("status", b"okay"),
                ("seed", b""), ("steps", b"1.0"), ("val_bpb", b"1e"), ("val_bpb", b""), ("signature", b"ab" * 63),
                ("device", b"back\\slash\\q")]


@pytest.mark.parametrize("col, cell", ONE_BAD_CELL, ids=[f"{c}={v!r}" for c, v in ONE_BAD_CELL])
def test_read_refuses_each_bad_cell_as_parse_line_does(tmp_path, col, cell):
    bad = _replace_cell(GOOD, col, cell)
    expected = ledger.parse_line(bad.decode().rstrip("\n"))
    assert isinstance(expected, list) and expected, expected
    path = tmp_path / ledger.FILENAME
    path.write_bytes(HEADER + GOOD + bad + line_of(make_row(run_id="after")))
    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["before", "after"]
    assert [(p.line, p.field, p.message) for p in problems] == [(3, f, m) for f, m in expected]


def test_read_refuses_a_missing_reason_or_metric(tmp_path):
    crash = _replace_cell(_replace_cell(GOOD, "status", b"crash"), "reason", b"")
    path = tmp_path / ledger.FILENAME
    path.write_bytes(HEADER + GOOD + crash + _replace_cell(GOOD, "val_bpb", b""))
    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["before"]
    assert [(p.line, p.field, p.message) for p in problems] == [(3, "reason", "is empty but status is crash"),
                                                                (4, "val_bpb", "is empty but status is ok")]


def test_read_returns_what_parse_line_returns_line_by_line(tmp_path):
    """Escapes, month ends, leap days, empty optionals, a signature and a line of an earlier schema, all in one file."""
    rows = [make_row(run_id="a", time="2026-01-31T23:59:59Z", label="tab\there \\ and \\n", reason=""),
            make_row(run_id="b", status="crash", reason="x\ny\r\\", val_bpb=None, time="2024-02-29T00:00:00Z", steps=None),
            make_row(run_id="c", dirty=True, signature="f" * 128, artifact_sha="e" * 64, config="cpu: 4L 128d", val_bpb=-1.5e-3)]
    path = new_ledger(tmp_path, *rows)
    width = ledger.EARLIER_WIDTHS[0]
    with open(path, "a") as f:
        f.write("\t".join(ledger.format_row(make_row(run_id="old")).split("\t")[:width]) + "\n")
    lines = path.read_text().split("\n")[1:-1]
    assert ledger.read(path) == ([ledger.parse_line(line) for line in lines], [])
    assert ledger.read(path)[0] == [as_text(r) for r in rows] + [as_text(make_row(run_id="old"))]


@pytest.mark.parametrize("collector_on", [True, False])
def test_a_read_leaves_the_garbage_collector_as_it_found_it(tmp_path, collector_on):
    """read() pauses the collector while it builds a clean ledger's rows: it is back on, or still off, after."""
    path = new_ledger(tmp_path, make_row(run_id="a"), make_row(run_id="b"))
    (gc.enable if collector_on else gc.disable)()
    try:
        rows, problems = ledger.read(path)
        assert gc.isenabled() == collector_on and [r["run_id"] for r in rows] == ["a", "b"] and problems == []
    finally:
        gc.enable()


def test_read_reports_bad_header_and_keeps_rows(tmp_path):
    path = tmp_path / ledger.FILENAME
    path.write_bytes(HEADER.replace(b"val_bpb", b"val_loss") + GOOD)
    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["before"]
    assert [(p.line, p.field) for p in problems] == [(1, "")]
    assert "header differs" in problems[0].message
    with pytest.raises(ledger.LedgerError, match=r"results\.tsv:1: header differs"):
        ledger.read_strict(path)


def test_read_reports_empty_file(tmp_path):
    path = tmp_path / ledger.FILENAME
    path.write_bytes(b"")
    rows, problems = ledger.read(path)
    assert rows == []
    assert [(p.line, p.field) for p in problems] == [(1, "")]
    assert "empty" in problems[0].message
    with pytest.raises(ledger.LedgerError, match=r"results\.tsv:1: file is empty"):
        ledger.read_strict(path)


def test_read_header_only_is_empty_and_clean(tmp_path):
    path = new_ledger(tmp_path)
    assert ledger.read(path) == ([], [])
    assert ledger.read_strict(path) == []


def test_read_reports_every_bad_line_in_order(tmp_path):
    path = tmp_path / ledger.FILENAME
    r = [line_of(make_row(run_id=f"r{i}")) for i in range(4)]
    path.write_bytes(HEADER + r[0] + BAD_LINES["unknown-status"][0] + r[1] + r[2]
                     + BAD_LINES["non-utf8"][0] + r[3] + b"half a li")
    rows, problems = ledger.read(path)
    assert [x["run_id"] for x in rows] == ["r0", "r1", "r2", "r3"]
    assert [(p.line, p.field) for p in problems] == [(3, "status"), (6, ""), (8, "")]
    assert "torn last line (9 bytes" in problems[2].message
    with pytest.raises(ledger.LedgerError) as err:
        ledger.read_strict(path)
    assert str(err.value).startswith(f"{path}:3 field 'status': ")
    assert str(err.value).endswith("(and 2 more problem(s))")


# ---------------------------------------------------------------------------------------------- 4. torn last line


def test_torn_last_line_is_reported_then_closed_off_by_append(tmp_path):
    path = new_ledger(tmp_path, make_row(run_id="r1"), make_row(run_id="r2"))
    intact = path.read_bytes()
    fragment = line_of(make_row(run_id="torn"))[:100]
    with path.open("ab") as f:
        f.write(fragment)

    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["r1", "r2"]
    assert [(p.line, p.field) for p in problems] == [(4, "")]
    assert problems[0].message.startswith("torn last line (100 bytes, no newline)")
    with pytest.raises(ledger.LedgerError, match=r"results\.tsv:4: torn last line"):
        ledger.read_strict(path)

    new = make_row(run_id="r3", seed=3)
    ledger.append(new, path)
    closed = fragment + ledger.TORN_MARK.encode() + b"\n"
    assert path.read_bytes() == intact + closed + line_of(new)
    rows, problems = ledger.read(path)
    assert rows == [as_text(make_row(run_id="r1")), as_text(make_row(run_id="r2")), as_text(new)]
    assert len(problems) == 1 and problems[0].line == 4  # the fragment, now one bad line
    assert problems[0].message.startswith("torn line: a writer died mid-append (closed off")

    ledger.append(make_row(run_id="r4"), path)  # no second newline once the line is closed
    assert path.read_bytes() == intact + closed + line_of(new) + line_of(make_row(run_id="r4"))
    assert [p.line for p in ledger.read(path)[1]] == [4]


def test_torn_line_cut_in_last_column_stays_a_bad_line(tmp_path):
    path = new_ledger(tmp_path, make_row(run_id="r1"))
    full = line_of(make_row(run_id="torn", data_sha="0123456789abcdef"))
    with path.open("ab") as f:
        f.write(full[:-1 - 9])  # the writer died after 7 of the 16 hex digits of data_sha
    assert [p.line for p in ledger.read(path)[1]] == [3]  # reported as torn: fine so far
    ledger.append(make_row(run_id="r2"), path)
    rows, problems = ledger.read(path)
    # Closed off with a plain newline, this fragment would parse as run 'torn' with data_sha '0123456'.
    assert [r["run_id"] for r in rows] == ["r1", "r2"]
    assert [p.line for p in problems] == [3]


# ---------------------------------------------------------------------------------------------- 5. concurrency

WRITER = """
    writer, path, n, go = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    for i in range(n):
        ledger.append(make_row(run_id=f"w{writer}-{i}", seed=i, label=f"writer {writer}\\trow {i}\\n",
                               reason="x" * (i % 50)), path)
"""


def test_eight_processes_append_concurrently(tmp_path):
    writers, per_writer = 8, 200
    path = new_ledger(tmp_path)
    go = tmp_path / "go"
    procs = [spawn(WRITER, str(w), str(path), str(per_writer), str(go)) for w in range(writers)]
    try:
        for p in procs:
            wait_ready(p)
        go.touch()  # start them together
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            p.kill()

    rows, problems = ledger.read(path)
    assert problems == []
    assert len(rows) == writers * per_writer
    seen = {}
    for r in rows:
        w, i = (int(x) for x in r["run_id"][1:].split("-"))
        seen[(w, i)] = seen.get((w, i), 0) + 1
        assert r == as_text(make_row(run_id=f"w{w}-{i}", seed=i, label=f"writer {w}\trow {i}\n",
                                     reason="x" * (i % 50)))
    assert seen == {(w, i): 1 for w in range(writers) for i in range(per_writer)}
    # each writer's own rows stay in order
    for w in range(writers):
        assert [int(r["seed"]) for r in rows if r["run_id"].startswith(f"w{w}-")] == list(range(per_writer))
    assert path.read_bytes().count(b"\n") == 1 + writers * per_writer


# ---------------------------------------------------------------------------------------------- 6. SIGKILL

HALF_WRITER = """
    path = sys.argv[1]
    line = ledger.format_row(make_row(run_id="doomed")).encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, line[: len(line) // 2])
    print("ready", flush=True)
    time.sleep(120)
"""


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_sigkill_while_holding_lock_mid_line(tmp_path):
    earlier = [make_row(run_id=f"r{i}", seed=i) for i in range(3)]
    path = new_ledger(tmp_path, *earlier)
    before = path.read_bytes()
    doomed = line_of(make_row(run_id="doomed"))
    half = doomed[: len(doomed) // 2]

    proc = spawn(HALF_WRITER, str(path))
    try:
        wait_ready(proc)
        assert path.read_bytes() == before + half
        assert not _lock_is_free(path)  # the child holds the ledger lock

        rows, problems = ledger.read(path)  # readers don't lock: they see a torn line, never a row
        assert rows == [as_text(r) for r in earlier]
        assert [(p.line, p.field) for p in problems] == [(5, "")] and "torn" in problems[0].message

        new = make_row(run_id="after-kill", seed=99)
        outcome: list = []

        def do_append():
            try:
                ledger.append(new, path)
                outcome.append("done")
            except BaseException as e:
                outcome.append(e)

        t = threading.Thread(target=do_append, daemon=True)
        t.start()
        t.join(0.5)
        assert t.is_alive() and outcome == []  # blocked on the dead-to-be writer's lock

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        t.join(60)  # milliseconds when idle; a lock that outlived its holder would block forever
        assert not t.is_alive(), "append still blocked 60 s after the lock holder was SIGKILLed"
        assert outcome == ["done"]
        assert time.monotonic() - killed_at < 60
    finally:
        proc.kill()
        proc.wait()

    assert proc.returncode == -signal.SIGKILL
    assert _lock_is_free(path)
    data = path.read_bytes()
    assert data == before + half + ledger.TORN_MARK.encode() + b"\n" + line_of(new)
    rows, problems = ledger.read(path)
    assert rows == [as_text(r) for r in earlier] + [as_text(new)]
    assert [(p.line, p.field) for p in problems] == [(5, "")]
    assert problems[0].message.startswith("torn line: a writer died mid-append")
    assert all(r["run_id"] != "doomed" for r in rows)


LOOPER = """
    path, life = Path(sys.argv[1]), int(sys.argv[2])
    i = 0
    while True:
        ledger.append(make_row(run_id=f"life{life}-{i}", seed=i, label=f"life {life}\\trow {i}",
                               reason="r" * (i % 97)), path)
        if i == 0:
            print("ready", flush=True)
        i += 1
"""


def _loop_row(life: int, i: int) -> dict:
    return make_row(run_id=f"life{life}-{i}", seed=i, label=f"life {life}\trow {i}", reason="r" * (i % 97))


def test_sigkill_tight_append_loop_at_random_moments(tmp_path):
    lives = 4
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    path = new_ledger(tmp_path)
    for life in range(lives):
        snapshot = path.read_bytes()
        proc = spawn(LOOPER, str(path), str(life))
        try:
            wait_ready(proc)
            time.sleep(rng.uniform(0.0, 0.15))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        assert path.read_bytes().startswith(snapshot), f"earlier bytes changed (seed {seed})"

    # Walk the file: per life, full lines 0..n-1, then possibly one partial line of row n.
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()
    assert lines[0] + b"\n" == HEADER
    pos, counts, partials = 1, [], 0
    for life in range(lives):
        i = 0
        while pos < len(lines) and lines[pos] + b"\n" == line_of(_loop_row(life, i)):
            pos, i = pos + 1, i + 1
        assert i >= 1, f"life {life} wrote no complete row (seed {seed})"
        counts.append(i)
        nxt = line_of(_loop_row(life + 1, 0)) if life + 1 < lives else None
        if pos < len(lines) and lines[pos] + b"\n" != nxt:
            assert line_of(_loop_row(life, i)).startswith(lines[pos]), f"line {pos + 1} is foreign (seed {seed})"
            pos, partials = pos + 1, partials + 1
    assert pos == len(lines), f"unexpected line {pos + 1} (seed {seed})"
    if torn:
        assert line_of(_loop_row(lives - 1, counts[-1])).startswith(torn)

    rows, problems = ledger.read(path)
    assert rows == [as_text(_loop_row(life, i)) for life in range(lives) for i in range(counts[life])]
    assert len(problems) == partials + bool(torn), problems
    if torn:
        assert "torn last line" in problems[-1].message


# ---------------------------------------------------------------------------------------------- 7. root discovery


@pytest.fixture
def git_env(monkeypatch, tmp_path):
    """An environment where git works on a bare machine and ignores the user's config and outer repos."""
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(var, raising=False)
    for var, value in {
        "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }.items():
        monkeypatch.setenv(var, value)


def _git(*args: str, cwd: Path) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def test_ledger_path_from_worktree_is_root_copy(tmp_path, git_env):
    root = tmp_path / "workspace"
    root.mkdir()
    _git("init", "-q", "-b", "main", cwd=root)
    (root / ledger.FILENAME).write_bytes(HEADER)
    _git("add", ledger.FILENAME, cwd=root)
    _git("commit", "-q", "-m", "ledger header", cwd=root)
    _git("worktree", "add", "-q", "5_worktrees/x", "-b", "exp/x", cwd=root)
    wt = root / "5_worktrees" / "x"
    (wt / "sub" / "dir").mkdir(parents=True)
    assert (wt / ledger.FILENAME).read_bytes() == HEADER

    expected = (root / ledger.FILENAME).resolve()
    assert ledger.ledger_path(wt).resolve() == expected
    assert ledger.ledger_path(wt / "sub" / "dir").resolve() == expected
    assert ledger.ledger_path(str(wt)).resolve() == expected
    assert ledger.ledger_path(root).resolve() == expected
    assert gitx.root_checkout(wt).resolve() == root.resolve()

    row = make_row(run_id="from-worktree", branch="exp/x")
    ledger.append(row, ledger.ledger_path(wt))
    assert (root / ledger.FILENAME).read_bytes() == HEADER + line_of(row)
    assert (wt / ledger.FILENAME).read_bytes() == HEADER
    assert _git("status", "--porcelain", "--untracked-files=no", cwd=wt) == ""
    assert _git("status", "--porcelain", "--untracked-files=no", cwd=root) == f" M {ledger.FILENAME}\n"


def test_ledger_path_outside_git_raises(tmp_path, git_env):
    outside = tmp_path / "not a repo"
    outside.mkdir()
    with pytest.raises(gitx.GitError) as err:
        ledger.ledger_path(outside)
    assert str(outside.resolve()) in str(err.value)
    assert "not inside a git checkout" in str(err.value)


# ---------------------------------------------------------------------------------------------- 8. missing / wrong file


def test_append_to_missing_file_creates_nothing(tmp_path):
    path = tmp_path / ledger.FILENAME
    with pytest.raises(ledger.LedgerError) as err:
        ledger.append(make_row(), path)
    assert f"git checkout -- {ledger.FILENAME}" in str(err.value)
    assert str(tmp_path) in str(err.value)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [
    HEADER.replace(b"val_bpb", b"val_loss"),
    HEADER.replace(b"\t", b","),
    HEADER[:-1],  # header without its newline
    HEADER.replace(b"run_id\t", b"") + GOOD,
    b"",
    b"\xff\xfe not even text\n",
], ids=["renamed-column", "commas", "no-newline", "missing-column", "empty", "binary"])
def test_append_to_wrong_header_raises_and_leaves_file_unchanged(tmp_path, content):
    path = tmp_path / ledger.FILENAME
    path.write_bytes(content)
    with pytest.raises(ledger.LedgerError, match=r"results\.tsv:1: header differs"):
        ledger.append(make_row(), path)
    assert path.read_bytes() == content


def test_a_row_edited_after_a_clean_read_is_caught_on_the_next(tmp_path):
    """read() validates every row each time: a row edited in place after a clean read is reported."""
    path = new_ledger(tmp_path, make_row(run_id="r1"), make_row(run_id="r2"))
    assert ledger.read(path) == ([as_text(make_row(run_id="r1")), as_text(make_row(run_id="r2"))], [])
    ledger.append(make_row(run_id="r3"), path)
    assert [r["run_id"] for r in ledger.read(path)[0]] == ["r1", "r2", "r3"]
    path.write_bytes(path.read_bytes().replace(b"\tok\t", b"\tbogus\t", 1))  # edit the first row in place
    rows, problems = ledger.read(path)
    assert [r["run_id"] for r in rows] == ["r2", "r3"]
    assert [(p.line, p.field) for p in problems] == [(2, "status")]


# ---------------------------------------------------------------------------------------------- schema growth


def test_a_ledger_with_an_earlier_header_stays_readable_and_takes_new_rows_without_changing_a_byte(tmp_path):
    """Columns are only added at the end: a 27-column ledger keeps its header and rows; new rows carry every column."""
    from lab.guard import rules

    width = ledger.EARLIER_WIDTHS[0]
    old_row = make_row(run_id="old")
    old_line = "\t".join(ledger.format_row(old_row).rstrip("\n").split("\t")[:width]) + "\n"
    path = tmp_path / ledger.FILENAME
    path.write_bytes(("\t".join(ledger.COLUMNS[:width]) + "\n" + old_line).encode())
    before = path.read_bytes()
    ledger.append(make_row(run_id="new", sandbox="bwrap 0.8.0", train_wall_s=12.5), path)
    after = path.read_bytes()
    assert after.startswith(before)
    rows, problems = ledger.read(path)
    assert problems == []
    assert [(r["run_id"], r["sandbox"], r["train_wall_s"]) for r in rows] == [("old", "", ""), ("new", "bwrap 0.8.0", "12.5")]
    assert rules.ledger_problem(before, after) is None
    assert ledger.read_strict(path)[0] == {**as_text(old_row), "sandbox": "", "train_wall_s": "", "config": ""}
