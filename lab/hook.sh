#!/bin/sh
# FROZEN. The agent hook (layer 1 of the guard), for Claude Code and Codex: `lab/hook.sh claude|codex`.
# Fail closed: the agent tools block only on exit 2, so any failure below becomes exit 2, with the reason.
case $0 in */*) lab=${0%/*} ;; *) lab=. ;; esac  # no dirname/cd subprocesses: this runs on every tool call
py="$lab/../.venv/bin/python"
[ -x "$py" ] || py=python3
# -I -S: no site-packages, no environment; lab's folder goes last on sys.path (a json.py at the root shadows
# nothing); bytecode lives under pycache_prefix, outside the repository (a poisoned lab/__pycache__ is never read).
# These make the guidance hard to fool by accident; protected mode (lab/grader/protect.py) is what protects.
"$py" -I -S -X "pycache_prefix=${HOME:-/tmp}/.cache/lab-pycache" -c 'import sys; sys.path.append(sys.argv[1]); from lab.guard.hook import main; sys.exit(main())' "$lab/.." "$@"
rc=$?
[ "$rc" -eq 0 ] && exit 0
[ "$rc" -ne 2 ] && echo "lab guard: the hook itself failed (exit $rc), so the action is blocked (fail closed); a human can run \`$lab/hook.sh < payload.json\` to see why" >&2
exit 2
