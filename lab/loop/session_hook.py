"""SessionStart and Stop hooks for Claude Code and Codex: `lab/session_hook.sh session-start|stop claude|codex`.

SessionStart (startup, resume, clear, compact): `lab digest` as the session's added context. Stop: while
an overnight window is open (lab/loop/window.py) and no stop rule has fired, block the stop once with `lab
next`'s step; never when the CLI says this stop already follows a block (`stop_hook_active`), when
the step is WAIT (the driver waits without an agent) or when anything fails. Both CLIs take the same
output fields here (their schemas: tests/cli/test_agent_clis.py). Stdlib only; `lab` runs as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lab.guard.hook import find_checkout, root_of
from lab.loop import window

LAB_TIMEOUT_S = 40  # below the hook timeout in .claude/settings.json and .codex/ (60 s)


def lab(root: str, *args: str) -> str:
    """`lab ARGS` in the root checkout with its own environment's Python; raises on any failure."""
    python = os.path.join(root, ".venv", "bin", "python")
    proc = subprocess.run([python if os.path.exists(python) else sys.executable, "-m", "lab.cli", *args], cwd=root,
                          capture_output=True, text=True, timeout=LAB_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"lab {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def session_start(root: str, payload: dict) -> dict:
    return {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": lab(root, "digest")}}


def stop(root: str, payload: dict) -> dict | None:
    """The block decision, or None to let the session stop."""
    if payload.get("stop_hook_active"):
        return None  # the CLI's loop guard: this stop already follows one of our blocks
    record = window.read(root)
    if not window.is_open(record):
        return None
    if window.directive(root, int(record.get("journal_entries_at_start", 0))).kind:
        return None  # a STOP or PAUSE from the human: the driver honours it between cycles
    step = json.loads(lab(root, "next", "--json"))
    if step.get("kind") == "WAIT":
        return None  # only queued runs remain: end the turn, the driver waits without spending tokens
    command = f" Run: {step['command']}" if step.get("command") else ""
    return {"decision": "block",
            "reason": f"The overnight window is open until {record['deadline'][11:16]} and no stop rule has fired: "
                      f"keep going with program.md's loop. Next step (`lab next`): {step['kind']}: {step['say']}{command}"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    event = argv[0] if argv else ""
    if event not in ("session-start", "stop"):
        print(f"lab session hook: unknown event {event!r}: use session-start or stop", file=sys.stderr)
        return 1
    payload = json.load(sys.stdin)
    checkout = find_checkout(os.path.abspath(str(payload.get("cwd") or os.getcwd())))
    if checkout is None:
        return 0
    root = root_of(checkout)
    out = session_start(root, payload) if event == "session-start" else stop(root, payload)
    if out is not None:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
