#!/bin/sh
# FROZEN. SessionStart and Stop hooks for Claude Code and Codex: `lab/session_hook.sh session-start|stop claude|codex`.
# Fail safe, the opposite of hook.sh: any failure exits 0 with no output, so a session starts without
# the digest or stops as it wanted; a broken hook never traps a session (a Stop hook blocks only on its JSON).
case $0 in */*) lab=${0%/*} ;; *) lab=. ;; esac
py="$lab/../.venv/bin/python"
[ -x "$py" ] || py=python3
out=$("$py" -I -S -c 'import sys; sys.path.insert(0, sys.argv[1]); from lab.loop.session_hook import main; sys.exit(main(sys.argv[2:]))' "$lab/.." "$@" 2>/dev/null) || exit 0
[ -n "$out" ] && printf '%s\n' "$out"
exit 0
