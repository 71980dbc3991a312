"""Process-tree helpers for eval.py: kill everything a training run started, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess


def _children() -> dict[int, list[int]]:
    """ppid -> child pids, from one `ps` snapshot (works on Linux and macOS)."""
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    tree: dict[int, list[int]] = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        tree.setdefault(ppid, []).append(pid)
    return tree


def descendants(pid: int) -> list[int]:
    tree, found, todo = _children(), [], [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and all its descendants (compile workers, data loaders), children first seen first."""
    for _ in range(2):  # a second pass catches processes forked while the first was killing
        for target in [pid, *descendants(pid)]:
            try:
                os.kill(target, signal.SIGKILL)
            except ProcessLookupError:
                pass
