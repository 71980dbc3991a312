"""Layer 1 of the guard: the agent hook. Reads one PreToolUse JSON payload on stdin; exit 2 = deny.

Called through lab/hook.sh by Claude Code (Edit, Write, MultiEdit, NotebookEdit, Bash) and Codex
(apply_patch, shell). Standard library and lab's light modules only: it runs on every tool call.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys

from lab import names, taxonomy
from lab.guard import meta, rules

EDIT_TOOLS = {"Edit", "Write", "MultiEdit", "NotebookEdit"}
SHELL_TOOLS = {"Bash", "shell", "exec_command", "local_shell", "container.exec"}
UNKNOWN = object()  # new content that cannot be computed from the payload
AGENT_SETTINGS = (".claude/", ".codex/")
# The queue's gate, job records, the locks of live runs and the overnight driver's window and cycle log:
# eval.py and lab write them, never the agent's tools.
TOOL_RECORDS = (".cache/smoke/", ".cache/queue/", ".cache/running/", ".cache/overnight/")
# No pathlib here: it costs more to import than the rest of the hook takes to run.


def find_checkout(path: str) -> str | None:
    """The nearest directory at or above `path` holding a `.git` entry (a checkout or worktree)."""
    while True:
        if os.path.exists(os.path.join(path, ".git")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def root_of(checkout: str) -> str:
    """The root checkout: a worktree's `.git` file points into the root's `.git/worktrees/`."""
    git = os.path.join(checkout, ".git")
    if os.path.isdir(git):
        return checkout
    with open(git) as f:
        gitdir = os.path.join(checkout, f.read().split("gitdir:", 1)[1].strip())
    commondir = os.path.join(gitdir, "commondir")
    if os.path.exists(commondir):
        with open(commondir) as f:
            gitdir = os.path.join(gitdir, f.read().strip())
    return os.path.dirname(os.path.realpath(gitdir))


def read_bytes(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def deny_reasons_for_write(path: str, new: bytes | None | object, meta_on: bool) -> list[str]:
    """Why the agent may not write `path` (the link itself and, resolved, what it points to) with `new`."""
    reasons = []
    for candidate in dict.fromkeys([os.path.normpath(path), os.path.realpath(path)]):
        if ".git" in candidate.split(os.sep):
            reasons.append(f"{candidate} is inside git's own directory: git internals are never edited by hand")
            continue
        checkout = find_checkout(candidate if os.path.isdir(candidate) else os.path.dirname(candidate))
        if checkout is None:
            continue
        rel = os.path.relpath(candidate, checkout).replace(os.sep, "/")
        classes = taxonomy.classes_of(rel)
        root = root_of(checkout)
        if rel.startswith(AGENT_SETTINGS):
            reasons.append(f"{rel} is agent configuration: a settings file could switch every hook off; "
                           "only a human edits .claude/ and .codex/")
        elif rel.startswith(TOOL_RECORDS):
            reasons.append(f"{rel} is a record the tools keep (smoke passes, queued jobs): `just smoke` and "
                           "`lab queue` write it, never a direct write")
        elif "HUMAN-ONLY" in classes:
            reasons.append(f"{rel} is HUMAN-ONLY: the agent never writes it; to reach the human, add an entry "
                           "at the top of RESEARCH_JOURNAL.md")
        elif rel == "results.tsv":
            reasons.append("results.tsv is the ledger: only `just eval` appends to it, never a direct write")
        elif "GLOBAL" in classes and os.path.realpath(checkout) != os.path.realpath(root):
            reasons.append(f"{rel} is GLOBAL: write the root checkout's copy ({os.path.join(root, rel)}), not the worktree's")
        else:
            old = read_bytes(candidate)
            content = (old or b"") + b"\0(content unknown)" if new is UNKNOWN else new
            change = rules.Change(rel, old, content)
            reasons += [v.message for v in rules.check([change], branch=names.MAIN, meta_on=meta_on, require_meta_entry=False)]
    return reasons


def edited_content(tool: str, args: dict, path: str) -> bytes | None | object:
    """The file's content after an Edit/Write/MultiEdit, or UNKNOWN."""
    if tool == "Write":
        return str(args.get("content", "")).encode()
    old = read_bytes(path)
    if tool not in ("Edit", "MultiEdit") or old is None:
        return UNKNOWN
    text = old.decode(errors="surrogateescape")
    for edit in args.get("edits") or [args]:
        old, new = str(edit.get("old_string", "")), str(edit.get("new_string", ""))
        if old not in text:
            return UNKNOWN
        text = text.replace(old, new) if edit.get("replace_all") else text.replace(old, new, 1)
    return text.encode(errors="surrogateescape")


def patch_writes(patch: str, cwd: str) -> list[tuple[str, bytes | None | object]]:
    """(path, new content) for each file of a Codex `*** Begin Patch` text."""
    writes, current, hunks = [], None, []
    for line in patch.splitlines() + ["*** End Patch"]:
        match = re.match(r"\*\*\* (Add|Update|Delete) File: (.+)|\*\*\* Move to: (.+)|\*\*\* End Patch", line)
        if match:
            if current is not None:
                writes.append((current, _apply_hunks(current, hunks)))
            current, hunks = None, []
            if match.group(1) == "Delete":
                writes.append((os.path.join(cwd, match.group(2).strip()), None))
            elif match.group(1):
                current, hunks = os.path.join(cwd, match.group(2).strip()), [] if match.group(1) == "Update" else None
                if match.group(1) == "Add":
                    hunks = ["+"]  # marks an added file: content from the + lines
            elif match.group(3):
                writes.append((os.path.join(cwd, match.group(3).strip()), UNKNOWN))
        elif current is not None and hunks is not None:
            hunks.append(line)
    return writes


def _apply_hunks(path: str, lines: list[str]) -> bytes | object:
    if lines[:1] == ["+"]:  # Add File
        return "".join(line[1:] + "\n" for line in lines[1:] if line.startswith("+")).encode()
    old = read_bytes(path)
    if old is None:
        return UNKNOWN
    text = old.decode(errors="surrogateescape")
    chunks, chunk = [], []
    for line in lines:
        if line.startswith("@@"):
            chunks.append(chunk)
            chunk = []
        elif line[:1] in (" ", "-", "+"):
            chunk.append(line)
    chunks.append(chunk)
    for chunk in filter(None, chunks):
        before = "".join(line[1:] + "\n" for line in chunk if line[0] in " -")
        after = "".join(line[1:] + "\n" for line in chunk if line[0] in " +")
        if before not in text:
            return UNKNOWN
        text = text.replace(before, after, 1) if before else after + text
    return text.encode(errors="surrogateescape")


def shell_command(args: dict) -> str:
    command = args.get("command", args.get("cmd", ""))
    if isinstance(command, list):  # Codex: ["bash", "-lc", "script"] or argv
        return command[2] if len(command) == 3 and command[1] in ("-c", "-lc") else shlex.join(map(str, command))
    return str(command)


def shell_reasons(command: str, cwd: str, meta_on: bool) -> list[str]:
    """Why the agent may not run `command` in `cwd`."""
    from lab.guard import shellscan  # only shell calls need it

    reasons, findings = [], shellscan.scan(command)
    bases = [cwd] + [os.path.join(cwd, d) for d in re.findall(r"(?:^|[;&|(\s])cd\s+([^\s;&|)]+)", command)]
    for finding in findings:
        if finding.kind == "bypass":
            reasons.append(f"`{finding.target}`: {finding.why}; the guard's rules are not negotiable from the agent side")
        elif finding.kind == "unparseable" or finding.target == "?":
            for token in shellscan.mentioned_paths(command):
                for base in bases:
                    if _protected(os.path.join(base, token), meta_on):
                        reasons.append(f"{finding.why}, and it names {token}, which the agent may not write")
        elif finding.target == ".":
            checkout = find_checkout(cwd)
            if checkout is not None and os.path.realpath(root_of(checkout)) == os.path.realpath(checkout):
                reasons.append(f"{finding.why} in the root checkout could discard uncommitted ledger rows and "
                               "journal entries; run it in your worktree, or commit them first from main")
        else:
            for base in bases:
                for target in _expand(base, finding.target):
                    reasons += [f"{finding.why}: {r}" for r in deny_reasons_for_write(target, UNKNOWN, meta_on)]
    return list(dict.fromkeys(reasons))


def _expand(base: str, token: str) -> list[str]:
    path = os.path.join(base, os.path.expanduser(token))
    if not re.search(r"[*?[]", token):
        return [path]
    import glob  # only for glob patterns: the module costs milliseconds on every hook call

    return glob.glob(path) or [path]


def _protected(path: str, meta_on: bool) -> bool:
    return bool(deny_reasons_for_write(path, UNKNOWN, meta_on))


def decide(payload: dict) -> list[str]:
    """Every reason to deny this tool call (empty: allow)."""
    tool = payload.get("tool_name", "")
    args = payload.get("tool_input") or {}
    cwd = str(payload.get("cwd") or os.getcwd())
    checkout = find_checkout(cwd)
    meta_on = meta.status(root_of(checkout)).on if checkout else False
    if tool in EDIT_TOOLS:
        target = os.path.join(cwd, str(args.get("file_path") or args.get("notebook_path") or ""))
        return deny_reasons_for_write(target, edited_content(tool, args, target), meta_on)
    patches = [v for v in _strings(args) if "*** Begin Patch" in v]
    if patches:
        return [r for p in patches for path, new in patch_writes(p, cwd) for r in deny_reasons_for_write(path, new, meta_on)]
    if tool in SHELL_TOOLS:
        return shell_reasons(shell_command(args), cwd, meta_on)
    return []


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def main() -> int:
    try:
        payload = json.load(sys.stdin)
    except ValueError as e:
        print(f"lab guard: the hook payload is not JSON ({e}); blocked (fail closed)", file=sys.stderr)
        return 2
    reasons = decide(payload)
    if not reasons:
        return 0
    print("lab guard: blocked.", file=sys.stderr)
    for reason in reasons:
        print(f"- {reason}", file=sys.stderr)
    print("See program.md section 2 for the file classes; a human unlocks frozen files via META_MODE.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
