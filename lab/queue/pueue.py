"""The pueue adapter: runs the real `pueue` client and reads its JSON (v3.x and v4.x).

Built against outputs captured from real pueue 4.0.4 and 3.4.1 (tests/ reads them); nothing here
pretends to be pueue. Every failure is a PueueError whose message says what to do.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import namedtuple
from datetime import datetime

TESTED_VERSION = "4.0.4"  # the pueue release tests/cli/test_queue_live.py runs against; .ci/run installs it
STATES = ("Queued", "Stashed", "Running", "Paused", "Done", "Locked")
RESULTS = ("Success", "Failed", "FailedToSpawn", "Killed", "Errored", "DependencyFailed")
INSTALL = ("install pueue (it provides `pueue` and `pueued`): `cargo install --locked pueue`, a package "
           "(`apt install pueue`, `brew install pueue`, `pacman -S pueue`) or a release binary from "
           "https://github.com/Nukesor/pueue/releases")
START = "start the daemon with `pueued -d` (or enable its service: `systemctl --user enable --now pueued`)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REPORT_TAIL = re.compile(r"^\s*(?:Location:|━+ BACKTRACE ━+)\s*$", re.MULTILINE)
# The three ways a client finds no daemon, as pueue 4.0.4 and 3.4.1 word them (07-errors/ fixtures).
_NO_DAEMON = (
    (re.compile(r'path "([^"]+)" while opening secret file'), "pueue's daemon was never started here (no shared secret at {0})"),
    (re.compile(r'path "([^"]+)" while connecting to daemon[^\n]*\n(?:\s*\d+:)?\s*No such file or directory'),
     "pueue's daemon is not running (its socket {0} is gone: it was stopped)"),
    (re.compile(r'path "([^"]+)" while connecting to daemon[^\n]*\n(?:\s*\d+:)?\s*Connection refused'),
     "pueue's daemon is not running (connection refused at {0}: it crashed or was killed and left a stale socket)"),
)


class PueueError(RuntimeError):
    """pueue is missing, its daemon is down, it refused a command, or it printed something unreadable."""


class NotInstalled(PueueError):
    """No `pueue` executable on PATH."""


class DaemonDown(PueueError):
    """The client found no daemon to talk to."""


Task = namedtuple("Task", "id label group path command envs state result detail enqueued_at start end")
Task.__doc__ = """One pueue task, version-neutral. state: one of STATES; result: one of RESULTS once Done, else None;
detail: the exit code (Failed) or message (FailedToSpawn), else None; times are aware datetimes or None."""


def executable() -> str:
    """The `pueue` client on PATH, or NotInstalled saying how to get it."""
    found = shutil.which("pueue")
    if not found:
        raise NotInstalled(f"pueue is not installed (no `pueue` on PATH): {INSTALL}")
    return found


def run(*args: str, env: dict[str, str] | None = None, timeout: float | None = 60) -> str:
    """stdout of `pueue ARGS`; PueueError (DaemonDown when there is no daemon) on a non-zero exit."""
    cmd = [executable(), "--color", "never", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PueueError(f"`pueue {' '.join(args)}` did not answer within {timeout:.0f}s: is the daemon stuck? "
                         "(`pueue status` to look, restart `pueued` if it hangs)") from None
    if done.returncode != 0:
        raise error_of(args, done.stdout + done.stderr)
    return done.stdout


def error_of(args: tuple[str, ...] | list[str], output: str) -> PueueError:
    """The PueueError for a failed `pueue ARGS` that printed `output` (ANSI escapes removed)."""
    # color-eyre's report ends with a Location and, under RUST_BACKTRACE=1, a BACKTRACE section whose
    # numbered frames ("3: pueue::main::…") must not read as causes
    text = _REPORT_TAIL.split(_ANSI.sub("", output), 1)[0]
    for pattern, message in _NO_DAEMON:
        m = pattern.search(text)
        if m:
            return DaemonDown(f"{message.format(m.group(1))}: {START}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # color-eyre reports put the cause on numbered lines ("0: Failed to ..."); clap and pueue put it in
    # the first paragraph (clap continues it on indented lines: "…not provided:\n  <COMMAND>...")
    cause = [re.sub(r"^\d+:\s*", "", line) for line in lines if re.match(r"^\d+:", line)] or \
        [" ".join(line.strip() for line in text.strip().split("\n\n", 1)[0].splitlines())]
    said = "; ".join(cause) if cause else "no output"
    return PueueError(f"`pueue {' '.join(args)}` failed: {said}")


def _time(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(_trim_nanos(str(value)))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PueueError(f"{where}: {value!r} is not an RFC 3339 time with an offset")
    return moment


def _int(value: object, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PueueError(f"{where}: {value!r} is not an integer") from None


def _trim_nanos(text: str) -> str:
    # pueue writes nanoseconds; datetime.fromisoformat takes at most microseconds
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def _one_key(value: object, where: str) -> tuple[str, object]:
    """(name, payload) of a serde enum written as "Name" or {"Name": payload}."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.items()))
    raise PueueError(f"{where}: expected a name or a one-key object, got {json.dumps(value)[:120]}")


def _result(value: object, where: str) -> tuple[str, object]:
    name, payload = _one_key(value, where)
    if name not in RESULTS:
        raise PueueError(f"{where}: unknown task result {name!r} (known: {', '.join(RESULTS)})")
    return name, payload


def parse_task(raw: object, where: str = "task") -> Task:
    """A Task from one task object of `status --json` or `log --json`, v3 or v4; unknown fields are ignored."""
    if not isinstance(raw, dict):
        raise PueueError(f"{where}: expected an object, got {json.dumps(raw)[:120]}")
    try:
        task_id, status = int(raw["id"]), raw["status"]
    except (KeyError, TypeError, ValueError) as e:
        raise PueueError(f"{where}: missing or bad 'id'/'status' ({e})") from None
    where = f"{where} {task_id}"
    state, payload = _one_key(status, f"{where} status")
    if state == "Locked" and isinstance(payload, dict) and "previous_status" in payload:
        # v4 keeps what it was before `edit`
        previous, payload = _one_key(payload["previous_status"], f"{where} status")
        if previous not in STATES:
            raise PueueError(f"{where}: unknown task state {previous!r} before Locked (known: {', '.join(STATES)})")
    if state not in STATES:
        raise PueueError(f"{where}: unknown task state {state!r} (known: {', '.join(STATES)})")
    times = payload if isinstance(payload, dict) and state != "Done" else {}
    result = detail = None
    if state == "Done":
        if isinstance(payload, dict) and "result" in payload:  # v4: {"Done": {"enqueued_at", "start", "end", "result"}}
            times = payload
            result, detail = _result(payload["result"], f"{where} result")
        else:  # v3: {"Done": "Success"} or {"Done": {"Failed": 3}}, times at the top level
            result, detail = _result(payload, f"{where} result")
    envs = raw.get("envs") or {}
    if not isinstance(envs, dict):
        raise PueueError(f"{where}: 'envs' is not an object")
    label = raw.get("label")
    return Task(
        id=task_id, label=label if isinstance(label, str) else None, group=str(raw.get("group", "")),
        path=str(raw.get("path", "")), command=str(raw.get("command", "")), envs={str(k): str(v) for k, v in envs.items()},
        state=state, result=result, detail=detail,
        enqueued_at=_time(times.get("enqueued_at", raw.get("enqueued_at")), f"{where} enqueued_at"),
        start=_time(times.get("start", raw.get("start")), f"{where} start"),
        end=_time(times.get("end", raw.get("end")), f"{where} end"),
    )


def _json(text: str, what: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise PueueError(f"{what} is not JSON ({e}); first bytes: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise PueueError(f"{what} is not a JSON object: {text[:80]!r}")
    return data


def parse_status(text: str) -> tuple[dict[int, Task], dict[str, dict]]:
    """(tasks by id, groups by name) from `pueue status --json`."""
    data = _json(text, "`pueue status --json` output")
    tasks, groups = data.get("tasks"), data.get("groups")
    if not isinstance(tasks, dict) or not isinstance(groups, dict):
        raise PueueError("`pueue status --json` output has no 'tasks' and 'groups' objects")
    parsed = {_int(k, "`pueue status --json` task id"): parse_task(v, "`pueue status --json` task") for k, v in tasks.items()}
    return parsed, parse_groups(json.dumps(groups))


def parse_groups(text: str) -> dict[str, dict]:
    """{name: {"status", "parallel_tasks"}} from `pueue group --json`."""
    data = _json(text, "`pueue group --json` output")
    groups = {}
    for name, g in data.items():
        if not isinstance(g, dict) or "parallel_tasks" not in g:
            raise PueueError(f"`pueue group --json`: group {name!r} has no parallel_tasks: {json.dumps(g)[:80]}")
        status, _ = _one_key(g.get("status", ""), f"group {name!r} status")
        groups[name] = {"status": status, "parallel_tasks": _int(g["parallel_tasks"], f"group {name!r} parallel_tasks")}
    return groups


def parse_log(text: str) -> dict[int, tuple[Task, str]]:
    """{id: (task, output)} from `pueue log --json`; the output is stdout and stderr merged."""
    data = _json(text, "`pueue log --json` output")
    logs = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "task" not in entry:
            raise PueueError(f"`pueue log --json`: entry {key!r} has no 'task'")
        output = entry.get("output")
        logs[_int(key, "`pueue log --json` task id")] = (parse_task(entry["task"], "`pueue log --json` task"),
                                                         output if isinstance(output, str) else "")
    return logs


def status(env: dict[str, str] | None = None) -> tuple[dict[int, Task], dict[str, dict]]:
    return parse_status(run("status", "--json", env=env))


def groups(env: dict[str, str] | None = None) -> dict[str, dict]:
    return parse_groups(run("group", "--json", env=env))


def log_tail(task_id: int, lines: int = 30, env: dict[str, str] | None = None) -> str:
    """The last `lines` lines of a task's output ('' if pueue has none)."""
    logs = parse_log(run("log", "--json", "--lines", str(lines), str(task_id), env=env))
    return logs[task_id][1] if task_id in logs else ""


def add_args(command: str, *, label: str, workdir: str, group: str, after: list[int] = (), stashed: bool = False) -> list[str]:
    """argv (after `pueue`) that adds `command` as ONE word: pueue joins its words with spaces and runs `sh -c` on it."""
    # `--label=…`: a label that starts with '-' must not read as an option
    args = ["add", "--print-task-id", f"--label={label}", f"--working-directory={workdir}", "--group", group]
    for dep in after:
        args += ["--after", str(int(dep))]
    if stashed:
        args.append("--stashed")
    return [*args, "--", command]


def add(command: str, *, label: str, workdir: str, group: str, after: list[int] = (), stashed: bool = False,
        env: dict[str, str] | None = None) -> int:
    """Add a task and return its id; the task's environment is `env` (pueue copies the adding client's)."""
    out = run(*add_args(command, label=label, workdir=workdir, group=group, after=after, stashed=stashed), env=env)
    try:
        return int(out.strip())
    except ValueError:
        raise PueueError(f"`pueue add --print-task-id` printed {out.strip()[:80]!r}, not a task id") from None
