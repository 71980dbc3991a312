"""lab/queue/pueue.py and the pueue-facing parts of lab/queue/queue.py, checked against real pueue output.

The fixtures are captures of real pueue 4.0.4 and 3.4.1 clients (`<name>.cmd/.stdout/.stderr/.rc`, see
their README.md and SCHEMA.md). They live in tests/fixtures/pueue (vendored from shared/fixtures/pueue without the daemon logs and
help texts).
Parsers are checked against an independent reading of the raw JSON written here; commands are checked
with a real `sh -c` (what pueue runs a task with) and a `pueue` executable that replays a captured answer
and records the argv it was given (the real client's outputs, not a stand-in daemon).
No pueue daemon is needed. ~3 s; fast set.
Run: `just test tests/unit/test_pueue.py`.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lab.queue import pueue, queue

HERE = Path(__file__).resolve()
FIXTURES = HERE.parents[1] / "fixtures" / "pueue"  # vendored from shared/fixtures/pueue, daemon logs and help left out
assert (FIXTURES / "SCHEMA.md").is_file(), f"pueue fixtures missing at {FIXTURES}"

Capture = namedtuple("Capture", "name args stdout stderr rc")
# fixture dir -> (words the DaemonDown message must hold, words it must not): it names its own case only
NO_DAEMON_CASES = {
    "07-errors/never-started": (("never started",), ("stopped", "crashed")),
    "07-errors/daemon-stopped": (("stopped",), ("never started", "crashed")),
    "07-errors/daemon-crashed-stale-socket": (("crashed", "stale socket"), ("never started", "stopped")),
    "v3.4.1": (("stopped",), ("never started", "crashed")),  # v3.4.1/never-started-status: the socket is gone
}
# the weird label of 02-add/add-label-weird.cmd, written out by hand
WEIRD_LABEL = "He said \"hi\" & 'bye' \\ back\nsecond line\ttab \u2014 \u00fcn\u00efc\u00f8d\u00e9 \U0001F680 \u65e5\u672c"
RUN_ID = "20261123-091901-ab12"


# ---------------------------------------------------------------- reading captures

def pueue_args(cmd_line: str) -> list[str]:
    """The words after the pueue executable in a .cmd line (drops the `E` wrapper and its VAR=value words)."""
    words = shlex.split(cmd_line)
    at = next(i for i, w in enumerate(words) if w.endswith("/pueue"))
    return words[at + 1:]


def capture(rel: str) -> Capture:
    """The capture `rel` (e.g. '03-states/status-json-all-states'), with its args parsed from the .cmd."""

    def text(suffix: str) -> str:
        return (FIXTURES / f"{rel}{suffix}").read_text(encoding="utf-8")

    return Capture(rel, pueue_args(text(".cmd")), text(".stdout"), text(".stderr"), int(text(".rc")))


def captures_in(*dirs: str) -> list[str]:
    """Names of every capture in `dirs` (relative to the fixture root), sorted."""
    return sorted(str(p.relative_to(FIXTURES).with_suffix("")) for d in dirs for p in (FIXTURES / d).glob("*.cmd"))


def failed(names: list[str]) -> list[str]:
    """The captures among `names` whose command exited non-zero."""
    return [n for n in names if capture(n).rc != 0]


def json_captures(subcommand: str) -> list[str]:
    """Every successful `pueue SUBCOMMAND --json` capture with output, v4 and v3."""
    found = []
    for cmd in sorted(FIXTURES.rglob("*.cmd")):
        if "--json" not in cmd.read_text(encoding="utf-8").split():  # cheap filter: some .cmd use bash $'…' quoting
            continue
        cap = capture(str(cmd.relative_to(FIXTURES).with_suffix("")))
        words = [w for w in cap.args if w != "--json"]
        if words[:1] == [subcommand] and cap.rc == 0 and cap.stdout.strip():
            found.append(cap.name)  # failed ones (rc 1, no stdout) are the error_of tests' business
    return found


def is_v3(name: str) -> bool:
    return name.startswith("v3.4.1/")


# ---------------------------------------------------------------- an independent reading of the raw JSON

RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?([+-])(\d\d):(\d\d)")


def expected_time(text: str | None) -> datetime | None:
    """An RFC 3339 string as an aware datetime, the fraction truncated (not rounded) to microseconds."""
    if text is None:
        return None
    m = RFC3339.fullmatch(text)
    assert m, f"fixture time {text!r} is not the RFC 3339 form pueue writes"
    y, mo, d, h, mi, s, frac, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (-1 if sign == "-" else 1)
    micro = int((frac or "").ljust(9, "0")[:6])
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=timezone(offset))


def name_and_payload(value):
    """A serde enum value: "Name" -> (Name, None), {"Name": payload} -> (Name, payload)."""
    return (value, None) if isinstance(value, str) else next(iter(value.items()))


def expected_task(raw: dict, v3: bool) -> dict:
    """What parse_task should give for `raw`, read the way SCHEMA.md describes each version."""
    state, payload = name_and_payload(raw["status"])
    if v3:  # v3: unit/newtype variants, Done's payload IS the result, times at the top level
        times, result = raw, payload if state == "Done" else None
    else:  # v4: every variant is a struct holding its own times; Locked wraps what the task was
        if state == "Locked":
            payload = name_and_payload(payload["previous_status"])[1]
        times, result = payload, payload["result"] if state == "Done" else None
    result_name, detail = name_and_payload(result) if result is not None else (None, None)
    return {
        "id": raw["id"], "label": raw["label"], "group": raw["group"], "path": raw["path"], "command": raw["command"],
        "envs": raw["envs"], "state": state, "result": result_name, "detail": detail,
        "enqueued_at": expected_time(times.get("enqueued_at")), "start": expected_time(times.get("start")),
        "end": expected_time(times.get("end")),
    }


def assert_task_matches(task: pueue.Task, raw: dict, v3: bool) -> None:
    want = expected_task(raw, v3)
    got = task._asdict()
    assert got == want, f"task {raw['id']}"
    for key in ("enqueued_at", "start", "end"):  # datetime == ignores the offset; the offset must survive too
        if want[key] is not None:
            assert got[key].utcoffset() == want[key].utcoffset(), f"task {raw['id']} {key}"


def status_fixture(rel: str) -> tuple[dict, dict[int, pueue.Task]]:
    """(raw JSON, parsed tasks) of a `status --json` capture."""
    text = capture(rel).stdout
    return json.loads(text), pueue.parse_status(text)[0]


# ---------------------------------------------------------------- a `pueue` on PATH that replays captured answers

REPLAY_PUEUE = """#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).parent
(here / "argv.json").write_text(json.dumps(sys.argv[1:]))
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
reply = json.loads((here / "reply.json").read_text())
sys.stdout.write(reply["stdout"]); sys.stderr.write(reply["stderr"]); sys.exit(reply["rc"])
"""


@pytest.fixture
def replayed_pueue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Put a `pueue` on PATH that records its argv; call the fixture with the reply it should give."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "pueue"
    exe.write_text(REPLAY_PUEUE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")

    def reply(stdout: str = "", stderr: str = "", rc: int = 0):
        (bin_dir / "reply.json").write_text(json.dumps({"stdout": stdout, "stderr": stderr, "rc": rc}))
        return lambda: json.loads((bin_dir / "argv.json").read_text())  # the argv of the last call

    return reply


# ================================================================ parsers over every fixture

STATUS_CAPTURES = json_captures("status")
LOG_CAPTURES = json_captures("log")
GROUP_CAPTURES = json_captures("group")


def test_the_fixture_sets_cover_both_versions():
    """Guards the parametrized tests below against silently running on nothing."""
    for names in (STATUS_CAPTURES, LOG_CAPTURES, GROUP_CAPTURES):
        assert any(is_v3(n) for n in names) and any(not is_v3(n) for n in names), names
    assert len(STATUS_CAPTURES) >= 25 and len(LOG_CAPTURES) >= 15


@pytest.mark.parametrize("name", STATUS_CAPTURES)
def test_parse_status_matches_raw_json(name):
    """Every task's fields and every group of a real `status --json` are read as the raw JSON says."""
    raw = json.loads(capture(name).stdout)
    tasks, groups = pueue.parse_status(capture(name).stdout)
    assert sorted(tasks) == sorted(int(k) for k in raw["tasks"])
    for key, raw_task in raw["tasks"].items():
        assert tasks[int(key)].id == int(key)
        assert_task_matches(tasks[int(key)], raw_task, is_v3(name))
    assert groups == {g: {"status": v["status"], "parallel_tasks": v["parallel_tasks"]} for g, v in raw["groups"].items()}


@pytest.mark.parametrize("name", LOG_CAPTURES)
def test_parse_log_matches_raw_json(name):
    """Every entry of a real `log --json`: the task as the raw JSON says, its output verbatim, envs {}."""
    raw = json.loads(capture(name).stdout)
    logs = pueue.parse_log(capture(name).stdout)
    assert sorted(logs) == sorted(int(k) for k in raw)
    for key, entry in raw.items():
        task, output = logs[int(key)]
        assert_task_matches(task, entry["task"], is_v3(name))
        assert output == entry["output"]
        assert task.envs == {}  # `log --json` clears envs on purpose (SCHEMA.md)


@pytest.mark.parametrize("name", GROUP_CAPTURES)
def test_parse_groups_matches_raw_json(name):
    raw = json.loads(capture(name).stdout)
    assert pueue.parse_groups(capture(name).stdout) == {
        g: {"status": v["status"], "parallel_tasks": v["parallel_tasks"]} for g, v in raw.items()}


# ================================================================ specific states, labels, envs

# (state, result, detail) per task id, as SCHEMA.md and the capture scripts describe them
V4_ALL_STATES = {
    0: ("Running", None, None), 1: ("Queued", None, None), 2: ("Stashed", None, None), 3: ("Stashed", None, None),
    4: ("Paused", None, None), 5: ("Done", "Success", None), 6: ("Done", "Failed", 3), 7: ("Done", "Failed", 127),
    8: ("Done", "FailedToSpawn", 'Failed to spawn child 8 with err: Os { code: 2, kind: NotFound, '
                                 'message: "No such file or directory" }'),
    9: ("Done", "Killed", None), 10: ("Done", "DependencyFailed", None), 11: ("Done", "Success", None),
}
V3_ALL_STATES = {
    0: ("Running", None, None), 1: ("Queued", None, None), 2: ("Stashed", None, None), 3: ("Stashed", None, None),
    4: ("Paused", None, None), 5: ("Done", "Success", None), 6: ("Done", "Failed", 3),
    7: ("Done", "FailedToSpawn", 'Failed to spawn child 7 with err: Os { code: 2, kind: NotFound, '
                                 'message: "No such file or directory" }'),
    8: ("Done", "Killed", None), 9: ("Done", "DependencyFailed", None), 10: ("Done", "Success", None),
    11: ("Done", "Failed", 5), 12: ("Done", "Failed", 2),
}


@pytest.mark.parametrize("name, want", [("03-states/status-json-all-states", V4_ALL_STATES),
                                        ("v3.4.1/status-json-all-states", V3_ALL_STATES)])
def test_every_state_and_result(name, want):
    """Each state/result pueue has (both with and without a delayed Stashed) maps to (state, result, detail)."""
    raw, tasks = status_fixture(name)
    assert {i: (t.state, t.result, t.detail) for i, t in tasks.items()} == want
    # the delayed Stashed task really is the enqueue_at one, the plain one has none
    stashed = {i: name_and_payload(raw["tasks"][str(i)]["status"])[1]["enqueue_at"] for i in (2, 3)}
    assert stashed[2] is None and stashed[3] is not None
    running, queued, done = tasks[0], tasks[1], tasks[5]
    assert running.start and running.enqueued_at and running.end is None
    assert queued.enqueued_at and queued.start is None
    assert done.enqueued_at <= done.start <= done.end and done.end.tzinfo is not None


def test_locked_task():
    """v4 shows a task open in `pueue edit` as Locked{previous_status}; it stays Locked, not what it was."""
    _, tasks = status_fixture("03-states/status-json-locked")
    assert (tasks[2].state, tasks[2].result, tasks[2].label) == ("Locked", None, "stashed")
    assert [t.id for t in tasks.values() if t.state == "Locked"] == [2]


def ansi_c_unquote(body: str) -> str:
    """The body of a bash $'…' word, decoded for the escapes the fixtures use (anything else fails)."""
    escapes = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: escapes[m.group(1)], body)


@pytest.mark.parametrize("cmd, status_json, expected", [
    ("02-add/add-label-weird", "02-add/status-json-after-adds", WEIRD_LABEL),
    ("v3.4.1/add-env", "v3.4.1/status-json-all-states", 'weird "q"\nline2 \u00fc\U0001F680'),
])
def test_weird_label_survives_exactly(cmd, status_json, expected):
    """Quotes, backslash, newline, tab and unicode in a label come back exactly as they were passed to `add`."""
    line = (FIXTURES / f"{cmd}.cmd").read_text(encoding="utf-8")
    m = re.search(r"--label \$'((?:[^'\\]|\\.)*)'", line)
    assert m and ansi_c_unquote(m.group(1)) == expected
    task_id = int((FIXTURES / f"{cmd}.stdout").read_text())  # add -p printed the new task's id
    _, tasks = status_fixture(status_json)
    assert tasks[task_id].label == expected


def test_null_and_empty_labels_differ():
    """No --label gives None, `--label ''` gives ''."""
    add = capture("02-add/add-empty-label")
    assert add.args[-5:] == ["--label", "", "--", "echo", "empty-label"]
    _, tasks = status_fixture("02-add/status-json-empty-label")
    added = int(add.stdout)  # add -p printed the new task's id
    assert tasks[added].label == "" and tasks[added].command == "echo empty-label"
    assert tasks[added - 1].label is None


@pytest.mark.parametrize("name", ["03-states/status-json-all-states", "v3.4.1/status-json-all-states"])
def test_run_id_in_envs(name):
    """The job's LAB_RUN_ID travels in the task env; parse_task hands it back (as queue.ours reads it)."""
    raw = json.loads(capture(name).stdout)
    one = copy.deepcopy(raw["tasks"]["0"])
    one["envs"]["LAB_RUN_ID"] = RUN_ID
    assert pueue.parse_task(one).envs == one["envs"] and pueue.parse_task(one).envs["LAB_RUN_ID"] == RUN_ID
    for task in raw["tasks"].values():
        task["envs"]["LAB_RUN_ID"] = RUN_ID
    tasks, _ = pueue.parse_status(json.dumps(raw))
    assert all(t.envs["LAB_RUN_ID"] == RUN_ID for t in tasks.values())


@pytest.mark.parametrize("name", ["05-env/status-json-env-tasks", "05-env/status-json-after-12"])
def test_worker_ids_of_gpu_tasks(name):
    """PUEUE_WORKER_ID is read as written; both gpu tasks got slot 1 (the paused task 4 holds slot 0, README)."""
    raw, tasks = status_fixture(name)
    for i in (13, 14):
        assert tasks[i].group == "gpu"
        assert tasks[i].envs["PUEUE_WORKER_ID"] == raw["tasks"][str(i)]["envs"]["PUEUE_WORKER_ID"] == "1"
        assert tasks[i].envs["PUEUE_GROUP"] == "gpu"
    assert tasks[4].envs["PUEUE_WORKER_ID"] == "0" and tasks[4].state == "Paused"


def test_v3_task_env_keeps_the_adders_variables():
    """v3 copies the adding client's env too (add-env ran with MY_MARKER=v3)."""
    _, tasks = status_fixture("v3.4.1/status-json-all-states")
    assert tasks[10].envs["MY_MARKER"] == "v3" and tasks[10].envs["PUEUE_GROUP"] == "work"


def test_log_json_tasks_have_no_envs():
    logs = pueue.parse_log(capture("05-env/log-json-env-tasks").stdout)
    assert sorted(logs) == [12, 13, 14, 15] and all(task.envs == {} for task, _ in logs.values())


# ================================================================ unknown fields, malformed input

def with_unknown_fields(text: str) -> str:
    """`status --json` text with new keys at the top level, in each group, each task and each status payload."""
    data = json.loads(text)
    data["version"] = "9.9.9"
    for group in data["groups"].values():
        group["max_memory"] = {"gib": 80}
    for task in data["tasks"].values():
        task["new_field"] = [1, {"nested": None}]
        name, payload = name_and_payload(task["status"])
        if isinstance(payload, dict) and (name != "Done" or "result" in payload):
            payload["extra"] = "x"  # struct variants only: v3's {"Done": {"Failed": 3}} is an enum, not a struct
    return json.dumps(data, ensure_ascii=False)


@pytest.mark.parametrize("name", ["03-states/status-json-all-states", "03-states/status-json-locked",
                                  "v3.4.1/status-json-all-states"])
def test_unknown_fields_are_ignored(name):
    text = capture(name).stdout
    extended = with_unknown_fields(text)
    assert extended != json.dumps(json.loads(text), ensure_ascii=False)
    assert pueue.parse_status(extended) == pueue.parse_status(text)


def test_unknown_fields_in_log_and_group_json():
    log = json.loads(capture("04-log/log-json-17-18").stdout)
    for entry in log.values():
        entry["stream"] = "merged"
        entry["task"]["new_field"] = 1
    assert pueue.parse_log(json.dumps(log)) == pueue.parse_log(capture("04-log/log-json-17-18").stdout)
    groups = json.loads(capture("v3.4.1/group-json").stdout)
    for g in groups.values():
        g["extra"] = True
    assert pueue.parse_groups(json.dumps(groups)) == pueue.parse_groups(capture("v3.4.1/group-json").stdout)


QUEUED = {"id": 0, "status": {"Queued": {"enqueued_at": "2026-11-23T09:19:01.327291980+01:00"}}, "envs": {}}


def status_text(*tasks: dict) -> str:
    return json.dumps({"tasks": {str(t["id"]): t for t in tasks}, "groups": {"default": {"status": "Running",
                                                                                           "parallel_tasks": 1}}})


@pytest.mark.parametrize("text, says", [
    ("Error: not JSON at all", "is not JSON"),
    ("", "is not JSON"),
    ('[{"id": 0}]', "is not a JSON object"),
    ('{"groups": {}}', "'tasks'"),
    ('{"tasks": {}}', "'groups'"),
    (status_text({"id": 0, "envs": {}}), "'status'"),
    (status_text({**QUEUED, "status": "Exploded"}), "unknown task state 'Exploded'"),
    (status_text({**QUEUED, "status": {"Exploded": {}}}), "unknown task state 'Exploded'"),
    (status_text({**QUEUED, "status": {"Done": {"enqueued_at": None, "start": None, "end": None,
                                                "result": "Vanished"}}}), "unknown task result 'Vanished'"),
    (status_text({**QUEUED, "status": {"Done": {"Vanished": 3}}}), "unknown task result 'Vanished'"),  # v3 shape
    (status_text({**QUEUED, "status": {"Queued": {"enqueued_at": "yesterday"}}}), "'yesterday' is not an RFC 3339"),
    (status_text({**QUEUED, "envs": ["A=1"]}), "'envs' is not an object"),
])
def test_malformed_status_is_a_clear_pueue_error(text, says):
    with pytest.raises(pueue.PueueError) as err:
        pueue.parse_status(text)
    assert says in str(err.value)
    assert type(err.value) is pueue.PueueError


@pytest.mark.parametrize("parse, text, says", [
    (pueue.parse_log, '{"0": {"output": "x"}}', "has no 'task'"),
    (pueue.parse_log, '{"0": {"task": {"id": 0}, "output": ""}}', "'status'"),
    (pueue.parse_groups, '{"default": {"status": "Running"}}', "has no parallel_tasks"),
    (pueue.parse_groups, '["default"]', "is not a JSON object"),
])
def test_malformed_log_and_group_json(parse, text, says):
    with pytest.raises(pueue.PueueError, match=re.escape(says)):
        parse(text)


@pytest.mark.parametrize("parse, text", [
    (pueue.parse_status, json.dumps({"tasks": {"zero": QUEUED}, "groups": {}})),
    (pueue.parse_log, json.dumps({"zero": {"task": QUEUED, "output": ""}})),
    (pueue.parse_groups, '{"default": {"status": "Running", "parallel_tasks": "many"}}'),
    (pueue.parse_groups, '{"default": {"status": "Running", "parallel_tasks": null}}'),
])
def test_malformed_ids_and_counts_are_pueue_errors(parse, text):
    """Callers catch PueueError only (queue.reconcile around log_tail), so every malformed input must raise one."""
    with pytest.raises(pueue.PueueError):
        parse(text)


def test_a_time_without_offset_or_an_unknown_state_before_locked_is_refused():
    naive = {"id": 0, "status": {"Queued": {"enqueued_at": "2026-11-23T09:19:01"}}}
    with pytest.raises(pueue.PueueError, match="with an offset"):
        pueue.parse_task(naive)
    with pytest.raises(pueue.PueueError, match="'Exploded' before Locked"):
        pueue.parse_task({"id": 0, "status": {"Locked": {"previous_status": "Exploded"}}})


def test_a_null_log_output_is_empty_text():
    assert pueue.parse_log(json.dumps({"0": {"task": QUEUED, "output": None}}))[0][1] == ""


# ================================================================ error_of over real failures

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NO_DAEMON_ALL = captures_in(*(d for d in NO_DAEMON_CASES if d.startswith("07-errors/")))
NO_DAEMON = failed(NO_DAEMON_ALL + ["v3.4.1/never-started-status"])
BAD_INPUT = failed(captures_in("07-errors/bad-input") + ["v3.4.1/remove-running"])


def first_meaningful_line(output: str) -> str:
    """pueue's own first line of a failure: colour removed, color-eyre's `Error:` header and `N:` numbering dropped."""
    for line in ANSI.sub("", output).splitlines():
        line = re.sub(r"^\s*\d+:\s*", "", line).strip()
        if line and line != "Error:":
            return line
    return "no output"


def test_the_no_daemon_captures_all_fail_with_a_connection_error():
    """Only version/completions work offline; every other command in these dirs fails on the socket/secret."""
    offline = sorted(set(NO_DAEMON_ALL) - set(NO_DAEMON))
    assert offline == ["07-errors/daemon-stopped/completions-bash-works-offline", "07-errors/daemon-stopped/version"]
    assert len(NO_DAEMON) > 50
    for name in NO_DAEMON:
        output = capture(name).stdout + capture(name).stderr
        assert re.search(r"secret file|connecting to daemon", output), name
        assert "Usage:" not in output, name  # no clap usage error hides among them


@pytest.mark.parametrize("name", NO_DAEMON)
def test_error_of_no_daemon(name):
    """Each way of finding no daemon is a DaemonDown naming its case and the fix, without ANSI escapes."""
    cap = capture(name)
    err = pueue.error_of(cap.args, cap.stdout + cap.stderr)
    assert isinstance(err, pueue.DaemonDown)
    message = str(err)
    must, must_not = NO_DAEMON_CASES[name.rsplit("/", 1)[0]]
    assert all(w in message for w in must) and not any(w in message for w in must_not)
    assert "pueued -d" in message and "\x1b" not in message and "\n" not in message


@pytest.mark.parametrize("name", BAD_INPUT)
def test_error_of_bad_input(name):
    """A refusal by pueue or clap is a plain PueueError: one line, pueue's first line kept, no ANSI."""
    cap = capture(name)
    err = pueue.error_of(cap.args, cap.stdout + cap.stderr)
    assert type(err) is pueue.PueueError
    message = str(err)
    assert "\n" not in message and "\x1b" not in message
    assert first_meaningful_line(cap.stdout + cap.stderr) in message
    assert message.startswith(f"`pueue {' '.join(cap.args)}` failed")


@pytest.mark.parametrize("name, says", [
    ("07-errors/bad-input/status-json-bad-id-arg", "Failed to parse query"),
    ("07-errors/bad-input/add-after-non-numeric", "invalid value 'x'"),
    ("07-errors/bad-input/follow-missing", "The task to be followed doesn't exist"),
    ("v3.4.1/remove-running", "The command failed for tasks: 0"),  # v3 prints it on stdout
    ("07-errors/bad-input/add-no-command", "not provided: <COMMAND>..."),  # clap continues on the next line
])
def test_error_of_keeps_pueues_words(name, says):
    cap = capture(name)
    assert says in str(pueue.error_of(cap.args, cap.stdout + cap.stderr))


def test_the_readme_installs_the_pueue_release_the_live_tests_pin():
    readme = (HERE.parents[2] / "README.md").read_text()
    assert f"cargo install --locked pueue --version {pueue.TESTED_VERSION}" in readme


def test_error_of_under_rust_backtrace_keeps_the_causes_and_drops_the_frames():
    """RUST_BACKTRACE=1 (set on many Rust users' machines, and on the box these were captured on) makes
    color-eyre print numbered stack frames after the causes; they are not pueue's words."""
    bad = capture("07-errors/rust-backtrace/status-json-bad-id-arg")
    assert "BACKTRACE" in bad.stderr and "pueue::main" in bad.stderr
    message = str(pueue.error_of(bad.args, bad.stdout + bad.stderr))
    assert message == "`pueue --color never status --json 999` failed: Failed to parse query; --> 1:1"
    stopped = capture("07-errors/rust-backtrace/daemon-stopped-status")
    err = pueue.error_of(stopped.args, stopped.stdout + stopped.stderr)
    assert isinstance(err, pueue.DaemonDown) and "it was stopped" in str(err) and "tokio" not in str(err)


# ================================================================ run/add/status against replayed captures

def test_status_runs_pueue_and_parses(replayed_pueue):
    argv = replayed_pueue(stdout=capture("03-states/status-json-all-states").stdout)
    assert pueue.status() == pueue.parse_status(capture("03-states/status-json-all-states").stdout)
    assert argv() == ["--color", "never", "status", "--json"]


def test_log_tail_returns_the_tasks_output(replayed_pueue):
    raw = json.loads(capture("04-log/log-json-17").stdout)
    argv = replayed_pueue(stdout=capture("04-log/log-json-17").stdout)
    assert pueue.log_tail(17, lines=5) == raw["17"]["output"]
    assert argv() == ["--color", "never", "log", "--json", "--lines", "5", "17"]
    replayed_pueue(stdout=capture("04-log/log-json-missing-999").stdout)  # pueue answers {} for an unknown id
    assert pueue.log_tail(999) == ""


def test_run_raises_daemon_down(replayed_pueue):
    cap = capture("07-errors/daemon-crashed-stale-socket/status")
    replayed_pueue(stdout=cap.stdout, stderr=cap.stderr, rc=cap.rc)
    with pytest.raises(pueue.DaemonDown, match="stale socket"):
        pueue.run("status", "--json")


def test_add_passes_label_and_command_as_exact_argv_words(replayed_pueue):
    """No shell between us and pueue: a label/command full of shell syntax arrives as the same argv words."""
    label = queue.label_of("does $(rm -rf ~) `id` help?\n\ttab", WEIRD_LABEL)
    command = queue.eval_command("/opt/just", 0, ["--budget-s", "30; touch pwned", "ünïcødé 🚀"])
    argv = replayed_pueue(stdout="7\n")
    assert pueue.add(command, label=label, workdir="/w/5_worktrees/x", group="lab", after=[3], stashed=True) == 7
    assert argv() == ["--color", "never", "add", "--print-task-id", f"--label={label}",
                      "--working-directory=/w/5_worktrees/x", "--group", "lab", "--after", "3", "--stashed", "--", command]


def test_add_rejects_output_that_is_not_an_id(replayed_pueue):
    replayed_pueue(stdout="New task added (id 13).\n")
    with pytest.raises(pueue.PueueError, match="not a task id"):
        pueue.add("true", label="l", workdir="/", group="lab")


def test_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pueue.NotInstalled, match="cargo install --locked pueue"):
        pueue.executable()


# ================================================================ command building

def test_add_args_shape():
    """The command is ONE word after `--`; the label is one `--label=…` word, so a leading '-' cannot read as a flag."""
    args = pueue.add_args("just eval --seed 3", label=WEIRD_LABEL, workdir="/w", group="lab", after=[1, 2],
                          stashed=True)
    assert args == ["add", "--print-task-id", f"--label={WEIRD_LABEL}", "--working-directory=/w", "--group", "lab",
                    "--after", "1", "--after", "2", "--stashed", "--", "just eval --seed 3"]
    plain = pueue.add_args("x", label="", workdir="/w", group="lab")
    assert plain[-2:] == ["--", "x"] and "--stashed" not in plain and "--after" not in plain
    assert "--label=" in plain
    assert pueue.add_args("x", label="-rf", workdir="/w", group="lab")[2] == "--label=-rf"


def test_pueue_joins_command_words_so_the_command_must_be_one_word():
    """`pueue add echo 'a b' c` stored `echo a b c`: the word boundary is lost, so we pass a single word."""
    words = capture("02-add/add-no-dashdash").args[1:]
    assert words == ["echo", "a b", "c"]
    _, tasks = status_fixture("02-add/status-json-after-adds")
    assert tasks[13].command == " ".join(words) == "echo a b c"  # add-no-dashdash said "New task added (id 13)"
    shell_string = capture("02-add/add-shell-string")  # one word holding shell syntax is stored verbatim
    assert tasks[int(shell_string.stdout)].command == shell_string.args[-1] == 'echo "x y" && echo $PUEUE_GROUP'
    command = queue.eval_command("/opt/just", 1, ["--budget-s", "a b"])
    args = pueue.add_args(command, label="l", workdir="/w", group="lab")
    assert args[-1] == command and args[-2] == "--" and args.count(command) == 1


RECORDER = """#!{python}
import json, pathlib, sys
pathlib.Path(__file__).with_name("argv.json").write_text(json.dumps(sys.argv[1:]))
"""
NASTY = {
    "single-quote": "it's",
    "double-quote": 'say "hi"',
    "newline": "line1\nline2",
    "tab": "a\tb",
    "command-substitution": "$(touch {tmp}/pwned)",
    "backticks": "`touch {tmp}/pwned`",
    "semicolon": "; rm -rf x",
    "and": "&& touch {tmp}/pwned",
    "pipe-redirect": "| tee {tmp}/pwned > {tmp}/pwned",
    "variable": "$HOME ${{PATH}}",
    "backslash": "back\\slash\\n",
    "unicode": "ünïcødé 🚀 日本",
    "glob": "*",
    "empty": "",
    "flag-like": "--budget-s=1;touch {tmp}/pwned",
}


def run_through_sh(tmp_path: Path, args: list[str]) -> list[str]:
    """Run eval_command's line with `sh -c` (as pueue does) with `just` replaced by a recorder; its argv."""
    recorder = tmp_path / "fake just"  # a space in the path: the executable word is quoted too
    recorder.write_text(RECORDER.format(python=sys.executable))
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "x").write_text("must survive `; rm -rf x`")
    (tmp_path / "glob-bait").write_text("")  # an unquoted * would expand to the files here
    cmd = queue.eval_command(str(recorder), 3, args)
    subprocess.run(["sh", "-c", cmd], cwd=tmp_path, check=True, timeout=30)
    return json.loads((tmp_path / "argv.json").read_text())


@pytest.mark.parametrize("arg", list(NASTY.values()), ids=list(NASTY))
def test_eval_args_survive_sh_exactly(tmp_path, arg):
    arg = arg.format(tmp=tmp_path)
    assert run_through_sh(tmp_path, ["--budget-s", arg]) == ["eval", "--seed", "3", "--budget-s", arg]
    assert not (tmp_path / "pwned").exists() and (tmp_path / "x").exists()


def test_all_nasty_args_at_once(tmp_path):
    args = [a.format(tmp=tmp_path) for a in NASTY.values()]
    assert run_through_sh(tmp_path, args) == ["eval", "--seed", "3", *args]
    assert not (tmp_path / "pwned").exists() and (tmp_path / "x").exists()


@pytest.mark.parametrize("args, flag", [(["--seed"], "--seed"), (["--seed=3"], "--seed"), (["--smoke"], "--smoke"),
                                        (["--budget-s", "30", "--workdir", "x"], "--workdir")])
def test_eval_command_refuses_the_queues_own_flags(args, flag):
    with pytest.raises(queue.QueueError) as err:
        queue.eval_command("just", 0, args)
    assert flag in str(err.value)


def test_eval_command_allows_other_flags():
    cmd = queue.eval_command("just", 2, ["--budget-s", "30", "--max-steps=5", "--device", "cuda:0"])
    assert shlex.split(cmd) == ["just", "eval", "--seed", "2", "--budget-s", "30", "--max-steps=5", "--device", "cuda:0"]


@pytest.mark.parametrize("slug", ["$(touch pwned)", "a;b", "x y", "../main", "-rf", "a`id`", "ünï"])
def test_a_slug_cannot_carry_shell_syntax(tmp_path, slug):
    """The slug becomes a path and a branch name: anything beyond [a-z0-9-] is refused before pueue sees it."""
    with pytest.raises(queue.QueueError):
        queue.checkout_of(tmp_path, slug)


# ================================================================ label_of, predicted_delta, reason_of

@pytest.mark.parametrize("q, h", [("", "expect -0.01"), ("   ", "expect -0.01"), ("why?", ""), ("why?", "\n\t ")])
def test_label_of_needs_both(q, h):
    with pytest.raises(queue.QueueError, match="non-empty"):
        queue.label_of(q, h)


def test_label_of_keeps_the_text_verbatim():
    q, h = 'does "x" help?\nsecond\tline', "ünïcødé 🚀 日本 expect −0.01 $(id)"
    assert queue.label_of(q, h) == f"Q: {q} H: {h}"
    assert queue.label_of("  q \n", "\th ") == "Q: q H: h"  # only the ends are trimmed


@pytest.mark.parametrize("hypothesis, delta", [
    ("expect -0.02 val_bpb", -0.02), ("+0.05", 0.05), ("\u22120.01", -0.01), ("expect \u22120.01 on val", -0.01),
    ("no idea", None), ("", None), ("1e-3 better", 0.001), ("1e\u22123", 0.001), ("about .5", 0.5),
])
def test_predicted_delta(hypothesis, delta):
    got = queue.predicted_delta(hypothesis)
    if delta is None:
        assert got is None
    else:
        assert got == pytest.approx(delta)


@pytest.mark.parametrize("name, ids", [("03-states/status-json-all-states", {"Killed": 9, "Failed": 6,
                                                                             "FailedToSpawn": 8, "Dep": 10}),
                                       ("v3.4.1/status-json-all-states", {"Killed": 8, "Failed": 6,
                                                                          "FailedToSpawn": 7, "Dep": 9})])
def test_reason_of_real_tasks(name, ids):
    _, tasks = status_fixture(name)
    status, reason = queue.reason_of(tasks[ids["Killed"]])
    assert status == "killed" and f"task {ids['Killed']}" in reason and "killed" in reason
    status, reason = queue.reason_of(tasks[ids["Failed"]])
    assert status == "crash" and "exit code 3" in reason and f"task {ids['Failed']}" in reason
    status, reason = queue.reason_of(tasks[ids["FailedToSpawn"]])
    assert status == "crash" and tasks[ids["FailedToSpawn"]].detail in reason and "Failed to spawn child" in reason
    status, reason = queue.reason_of(tasks[ids["Dep"]])
    assert status == "crash" and "--after" in reason and f"task {ids['Dep']}" in reason


# ================================================================ every flag lab passes exists in real pueue

def _help_flags(name: str) -> set[str]:
    text = (FIXTURES / "help" / f"{name}.txt").read_text(encoding="utf-8")
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", text))


def test_every_flag_lab_passes_is_in_pueues_own_help(replayed_pueue, tmp_path):
    """Drive every pueue call lab makes (setup, add, enqueue, status, log, wait) and check each flag
    against the captured `--help` of pueue 4.0.4: a renamed or invented flag fails here, not at night."""
    replayed_pueue(stdout=capture("02-add/group-json").stdout)  # the groups without `lab`: setup adds it
    queue.setup(slots=2)
    replayed_pueue(stdout=json.dumps({"default": {"status": "Running", "parallel_tasks": 1},
                                      "lab": {"status": "Running", "parallel_tasks": 1}}))
    queue.setup(slots=2)  # the group exists with another count: `pueue parallel`
    replayed_pueue(stdout="7\n")
    pueue.add("just eval --seed 0", label="Q: x? H: -0.01", workdir=str(tmp_path), group="lab", after=[3], stashed=True)
    pueue.run("enqueue", "7")
    replayed_pueue(stdout=capture("04-log/log-json-17").stdout)
    pueue.log_tail(17, 5)
    replayed_pueue(stdout=capture("03-states/status-json-all-states").stdout)
    pueue.status()
    queue.wait([5, 6], timeout=10)
    calls = [json.loads(line) for line in (tmp_path / "bin" / "calls.jsonl").read_text().splitlines()]
    seen = set()
    for argv in calls:
        assert argv[:2] == ["--color", "never"] and "--color" in _help_flags("pueue")
        words = argv[2:argv.index("--")] if "--" in argv else argv[2:]
        command = words[0]
        seen.add(command)
        known = _help_flags(f"sub-{command}")
        if command == "group" and words[1:2] == ["add"]:
            known |= {"--parallel"}  # `group add`'s own help was not captured; 02-add/group-add-gpu ran it for real
            assert "--parallel" in capture("02-add/group-add-gpu").args
        for word in words[1:]:
            if word.startswith("-"):
                assert word.split("=", 1)[0] in known, f"`pueue {command}` has no flag {word!r} in its help"
    assert seen == {"group", "parallel", "add", "enqueue", "log", "status", "wait"}
