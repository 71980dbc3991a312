#!/usr/bin/env python3
"""A SCRIPTED STAND-IN FOR A MODEL: it follows `lab next` literally, to test that the loop never traps an agent.

No model is involved. Each step it runs `lab next --json` in the root checkout; when the step has a
command it runs that command verbatim (`bash -c`, from the root). Where the step is the agent's own
writing (an idea, a critique, an edit of train.py, a journal body) it writes a fixed, canned text
where the step says, then runs the step's command if there is one. `--first-args` is appended once,
to the first BASELINE command (the human's budget, given once). One JSON line per step goes to stdout.

`--session` makes it an agent CLI for `lab overnight --agent CMD`: it reads the cycle's prompt on
stdin, ends its turn (exit 0) at a WAIT step, at an IDEATE step once its one idea exists, or after
--steps steps; `--budget ARGS` goes on every queued run (`lab baseline`, `lab queue`) that names no
budget yet (before any baseline row the plan has none: the human's budget), and `--crash-once FILE`
exits 3 at once the first time (FILE absent), as a CLI that crashes.

Usage: stand_in_agent.py ROOT [--steps N] [--until KIND] [--first-args "--max-steps 8"]
       stand_in_agent.py ROOT --session [--steps N] [--budget "--max-steps 8"] [--crash-once FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

SLUG = "warmup-1"
TITLE = "Warm up for one step instead of thirty"
PREDICTION = "expect -0.3 ± 0.2 val_bpb: at a budget of a few steps, a long warm-up wastes most of them"
CRITIQUE = ("Strongest objection: a higher early learning rate can diverge; at 8 steps it will not.\n"
            "Verdict: run\n")
EDIT = ("warmup_steps=30)", "warmup_steps=1)")


def sh(command: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=900)


def lab(root: Path, *args: str) -> str:
    proc = sh(shlex.join(["lab", *args]), root)
    if proc.returncode != 0:
        raise SystemExit(f"stand-in: `lab {' '.join(args)}` failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout


def write_idea(root: Path) -> None:
    lab(root, "idea", "new", SLUG, "--title", TITLE)
    path = next((root / "1_ideas").glob(f"*_{SLUG}.md"))
    text = path.read_text()
    text = re.sub(r"(## Prediction\n)(<!--.*?-->\n)?", lambda m: m[0] + PREDICTION + "\n", text, count=1, flags=re.S)
    path.write_text(text)


def edit_train(root: Path) -> None:
    tree = root / "5_worktrees" / SLUG
    text = (tree / "train.py").read_text()
    assert EDIT[0] in text, f"stand-in: train.py has no {EDIT[0]!r}"
    (tree / "train.py").write_text(text.replace(*EDIT))
    for command in ("git add train.py", f"git commit -q -m '{SLUG}: warm up for one step'"):
        proc = sh(command, tree)
        if proc.returncode != 0:
            raise SystemExit(f"stand-in: `{command}` failed: {proc.stderr.strip()}")


def journal_body(root: Path, slug: str) -> str:
    v = json.loads(lab(root, "verdict", slug, "--json"))
    runs = " ".join(v["run_ids"])
    return (f"**Observation:** {slug} {v['kind']}, diff {v['diff']:+.4f} val_bpb over runs {runs}.\n"
            f"**Inference:** medium confidence: {v['n_exp']} seeds a side, a step budget.\n")


def from_path(command: str) -> Path | None:
    words = shlex.split(command.split("&&")[-1]) if command else []
    return Path(words[words.index("--from") + 1]) if "--from" in words else None


def act(root: Path, step: dict, first_args: list[str], state: dict) -> dict:
    """Do one step; returns what was run, for the log."""
    kind, command = step["kind"], step["command"]
    if kind == "IDEATE":
        write_idea(root)
        return {"kind": kind, "ran": f"lab idea new {SLUG} (canned)"}
    if kind == "EDIT":
        edit_train(root)
        return {"kind": kind, "ran": "edit train.py, commit (canned)"}
    if command is None:
        raise SystemExit(f"stand-in: step {kind} has no command and is not one I can write: {step['say']}")
    target = from_path(command)
    if target is not None:  # the step asks for the agent's text in a file first
        text = CRITIQUE if kind == "CRITIQUE" else journal_body(root, shlex.split(command)[3].split(":")[0])
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_text(text)
    if state.get("budget") and re.match(r"lab (baseline|queue) ", command) and "--max-steps" not in command:
        command += (" " if " -- " in command else " -- ") + shlex.join(state["budget"])
    if kind == "BASELINE" and not state.get("budget_given") and first_args:
        command = command + " " + shlex.join(first_args)
        state["budget_given"] = True
    proc = sh(command, root)
    if proc.returncode != 0:
        raise SystemExit(f"stand-in: step {kind} `{command}` exited {proc.returncode}: "
                         f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return {"kind": kind, "ran": command}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--until", default="", help="stop before a step of this kind, once an experiment finished")
    parser.add_argument("--first-args", default="")
    parser.add_argument("--session", action="store_true", help="one agent session of `lab overnight` (see above)")
    parser.add_argument("--budget", default="")
    parser.add_argument("--crash-once", type=Path)
    args = parser.parse_args()
    state: dict = {"budget": shlex.split(args.budget)}
    if args.session:
        prompt = sys.stdin.read()
        print(json.dumps({"prompt": next((line for line in prompt.splitlines() if line.startswith("Next step")), "")}),
              flush=True)
        if args.crash_once and not args.crash_once.exists():
            args.crash_once.touch()
            print("stand-in: crashing once, as a CLI can", file=sys.stderr)
            raise SystemExit(3)
    for _ in range(args.steps):
        step = json.loads(lab(args.root, "next", "--json"))
        mine = step["kind"] == "IDEATE" and any((args.root / "1_ideas").glob(f"*_{SLUG}.md"))
        if (step["kind"] == args.until and state.get("finished")) or (args.session and (step["kind"] == "WAIT" or mine)):
            print(json.dumps({"kind": step["kind"], "ran": None, "stopped": True}), flush=True)
            return
        done = act(args.root, step, shlex.split(args.first_args), state)
        state["finished"] = state.get("finished") or step["kind"] == "FINISH"
        print(json.dumps(done), flush=True)
    if args.session:
        return  # a session that ended on its own; the driver starts the next
    raise SystemExit(f"stand-in: still going after {args.steps} steps: the loop did not move on")


if __name__ == "__main__":
    sys.exit(main())
