"""Process-tree helpers for eval.py: kill everything a training run started, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess


def _parent_of_all() -> dict[int, int]:
    """pid -> ppid for every process: from /proc on Linux (no procps needed), else from `ps` (macOS)."""
    if os.path.isdir("/proc/self"):
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as f:
                        # the command name may hold spaces and parentheses: the fields after the last ')' are fixed
                        parents[int(entry)] = int(f.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue  # the process ended while we looked
        return parents
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    return {int(pid): int(ppid) for pid, ppid in (line.split() for line in out.splitlines())}


def age_s() -> float:
    """Seconds since this process started (interpreter start-up and imports included); 0.0 where /proc is missing."""
    try:
        with open("/proc/self/stat", "rb") as f:
            started_ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))


def descendants(pid: int) -> list[int]:
    tree: dict[int, list[int]] = {}
    for child, parent in _parent_of_all().items():
        tree.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and all its descendants (compile workers, data loaders)."""
    for _ in range(2):  # a second pass catches processes forked while the first was killing
        for target in [pid, *descendants(pid)]:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
