"""Shared set-up of the protected-mode tests: a real unprivileged agent user, a workspace it owns, protection on.

Root only (users, /etc/sudoers.d, /opt, /var/lib). Every name carries a per-run token, so a second run on
the same machine does not collide, and `teardown` removes what `Protected.up` made even after a failure.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import GIT_ENV, REPO, git, make_workspace, tiny_train

ROOT_ONLY = "protected mode needs root (it creates users, a sudoers rule and root-owned installs); CI runs as root"


def require_root() -> None:
    """Skip with one reason when not root; in CI (CI=1) that is a failure instead."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "1":
            pytest.fail(f"CI=1 but not root: {ROOT_ONLY}")
        pytest.skip(ROOT_ONLY)


class Protected:
    """A protected workspace `ws` owned by the agent user `agent`, with the grader user `grader`."""

    def __init__(self, corpus: Path, tiny: bool = True, copy: bool = True):
        self.token = secrets.token_hex(3)
        self.agent, self.grader = f"lab-a-{self.token}", f"lab-g-{self.token}"
        self.base = Path(tempfile.mkdtemp(prefix=f"lab-protect-{self.token}-", dir="/tmp"))
        os.chmod(self.base, 0o755)
        self.home, self.venv, self.ws = self.base / "home", self.base / "venv", self.base / "ws"
        self.corpus, self.tiny = (self.base / "corpus" if copy else corpus), tiny
        if copy:  # pytest's tmp is root's alone; smoke reads the corpus as the agent
            shutil.copytree(corpus, self.corpus)
            subprocess.run(["chmod", "-R", "a+rX", str(self.corpus)], check=True)
        self.up_done = False

    def up(self) -> None:
        from lab.grader import admin

        subprocess.run(["useradd", "--create-home", "--home-dir", str(self.home), "--shell", "/bin/sh", self.agent],
                       check=True, capture_output=True)
        admin.build_env(REPO, self.venv)  # the agent's own environment (root's pyenv is not readable by others)
        make_workspace(self.ws)
        (self.ws / ".venv").unlink()
        (self.ws / ".venv").symlink_to(self.venv)
        if self.tiny:
            tiny_train(self.ws)
            git("commit", "-qam", "tiny baseline", cwd=self.ws)
        self.chown()
        self.lab_root("protect", "--researcher", self.agent, "--grader-user", self.grader, "--source", str(self.corpus))
        self.up_done = True
        from lab.grader import protect as p

        self.cfg = p.config(self.ws)

    def chown(self) -> None:
        subprocess.run(["chown", "-R", f"{self.agent}:{self.agent}", str(self.ws)], check=True)

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
                "LAB_PYTHON": str(self.venv / "bin" / "python"), **GIT_ENV, **extra}

    def as_agent(self, *cmd: str, cwd: Path | None = None, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        """`cmd` as the agent user, in its workspace (or `cwd`), with its own environment only."""
        uid = pwd.getpwnam(self.agent).pw_uid
        return subprocess.run(list(cmd), cwd=cwd or self.ws, env=self.env(**extra), user=uid, group=uid, extra_groups=[],
                              capture_output=True, text=True, timeout=timeout, start_new_session=True)

    def sh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return self.as_agent("sh", "-c", script, **kw)

    def lab(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.as_agent(str(self.venv / "bin" / "python"), "-m", "lab.cli", *args, **kw)

    def lab_root(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=self.ws, capture_output=True, text=True,
                              env={**os.environ, **GIT_ENV})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def teardown(self) -> None:
        from lab.grader import admin, protect

        try:
            if protect.config(self.ws) is not None:
                self.lab_root("unprotect", "--purge")
        finally:
            subprocess.run(["userdel", "-f", self.grader], capture_output=True)
            subprocess.run(["pkill", "-KILL", "-u", self.agent], capture_output=True)  # only this run's own user
            subprocess.run(["userdel", "-f", "-r", self.agent], capture_output=True)
            shutil.rmtree(self.base, ignore_errors=True)
            rid = protect.repo_id(self.ws)
            for leftover in (protect.config_path(self.ws), admin.SUDOERS_DIR / f"lab-grader-{rid}"):
                leftover.unlink(missing_ok=True)
            for folder in (admin.INSTALL_ROOT / rid, admin.STATE_ROOT / rid):
                shutil.rmtree(folder, ignore_errors=True)
            for folder in (admin.INSTALL_ROOT, admin.STATE_ROOT, protect.CONFIG_DIR, protect.CONFIG_DIR.parent):
                try:
                    folder.rmdir()  # only when empty: a second run's, or a real protection's, stays
                except OSError:
                    pass
