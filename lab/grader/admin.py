"""Protected mode, the human's side (root, with sudo): `lab protect` (and --update) and `lab unprotect`, and the
held-out test scores `lab reveal` shows.

`sudo lab protect` installs eval.py, prepare.py and lab/ at main's commit into a root-owned place with its own
Python environment, creates the grader's user and state (data cache with val and test, the authoritative
ledger, run artifacts, an Ed25519 key only the grader can read) and a sudoers rule that lets the researcher run
exactly the grader's entry point (lab/grader/grade.py) as that user. No eval imports this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from lab import journal_format, ledger, names, tables, taxonomy
from lab.grader.protect import (
    CONFIG_DIR,
    SAFE_GIT,
    Config,
    ProtectError,
    config,
    config_path,
    object_store,
    repo_id,
    root_owned,
)

INSTALL_ROOT, STATE_ROOT, SUDOERS_DIR = Path("/opt/lab-grader"), Path("/var/lib/lab-grader"), Path("/etc/sudoers.d")
DEFAULT_USER = "lab-grader"
INSTALLED = ("eval.py", "prepare.py", "lab", "pyproject.toml", "uv.lock")  # the grader and what it imports


def test_scores(cfg: Config, slug: str) -> list[str]:
    """(root) A table of SLUG's and the baseline's runs, val vs held-out test bpb, from the grader's private state."""

    private = Path(cfg.state) / "private" / "test.tsv"
    if os.geteuid() != 0:
        raise ProtectError(f"the test scores are the grader's private state ({private}): run `sudo lab reveal {slug}`")
    cells = [line.split("\t") for line in private.read_text().splitlines()[1:]]
    if not any(c[1] == slug for c in cells):
        raise ProtectError(f"no graded run of '{slug}' in {private}")
    shown = [c for c in cells if c[1] == slug or c[1] in names.BASELINE_SLUGS]
    table = [("run_id", "slug", "seed", "val_bpb", "test_bpb")] + [(run_id, s, seed, val, test)
                                                                 for run_id, s, _commit, seed, val, test in shown]
    return tables.aligned(table, right={2, 3, 4})


# ------------------------------------------------------------------------------------- turning it on and off


def _run(*cmd: str, **kw) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise ProtectError(f"`{' '.join(cmd[:4])} …` failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc.stdout


def _git(root: Path, *args: str) -> str:
    """git as root in the researcher's repository: its ownership accepted, its fsmonitor and replace refs ignored."""
    return _run("git", "-c", f"safe.directory={root}", "-c", "core.fsmonitor=false", *args, cwd=root,
                env={**os.environ, **SAFE_GIT}).rstrip("\n")


def repo_root(cwd: Path) -> Path:
    """The root checkout that owns `cwd` (a worktree's too), asked as root without trusting the repository."""
    common = _run("git", "-c", "safe.directory=*", "rev-parse", "--path-format=absolute", "--git-common-dir", cwd=cwd,
                  env={**os.environ, **SAFE_GIT}).strip()
    return Path(common).parent.resolve()


def _python() -> str:
    """A root-owned interpreter of this Python's version that every user can run (the grader's base)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (Path(os.path.realpath(sys.base_prefix)) / "bin" / version, Path("/usr/bin") / version,
                Path("/usr/local/bin") / version):
        if exe.is_file() and root_owned(Path(os.path.realpath(exe))) and all(
                os.stat(p).st_mode & 0o005 == 0o005 for p in Path(os.path.realpath(exe)).parents):
            return str(exe)
    raise ProtectError(f"no root-owned {version} that every user can run (tried {sys.base_prefix}/bin, /usr/bin, "
                       f"/usr/local/bin): install one (apt-get install {version}) so the grader's interpreter is not yours")


def _uv_env() -> dict[str, str]:
    """uv with a root-owned cache: the grader's packages are hardlinked from it, so no one else may write it."""
    uv = shutil.which("uv")
    if not uv:
        raise ProtectError("uv is not on PATH: run as `sudo env PATH=$PATH .venv/bin/lab protect`")
    cache = Path(_run(uv, "cache", "dir").strip())
    if not (cache.is_dir() and root_owned(cache)):
        cache = Path("/var/cache/lab-grader/uv")
        cache.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "UV_CACHE_DIR": str(cache), "UV_LINK_MODE": "hardlink", "UV_NO_PROGRESS": "1"}


def build_env(src: Path, venv: Path) -> None:
    """A Python environment at `venv` with uv.lock's packages (no dev group), hardlinked from uv's cache, byte-compiled.

    Byte-compiled now because its users cannot write it: without .pyc files every import of torch, in the
    grader and in train.py's sandbox, compiles it from source again (~3 s a process on 2 CPU cores).
    """
    env = _uv_env()
    uv = shutil.which("uv")
    reqs = _run(uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--no-header",
                "--project", str(src), env=env)
    _run(uv, "venv", "-q", "--python", _python(), str(venv), env=env)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(reqs)
        f.flush()
        _run(uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(venv / "bin" / "python"), "-r", f.name, env=env)


WRAPPER = """#!/bin/sh
# The grader's one entry point (sudoers allows exactly this file): a clean environment, isolated Python.
exec /usr/bin/env -i PATH=/usr/bin:/bin HOME={state} LANG=C.UTF-8 LAB_GRADER_CONFIG={config} \\
    {install}/venv/bin/python -I -B {install}/src/lab/grader/grade.py "$@"
"""
# The installed copy of `lab` (any user): `bin/lab ledger check` verifies with code the agent cannot have edited.
LAB = """#!/bin/sh
exec /usr/bin/env -i PATH=/usr/bin:/bin HOME=/nonexistent LANG=C.UTF-8 {install}/venv/bin/python -I -B -c \\
    'import sys; sys.path.insert(0, "{install}/src"); from lab.cli import app; sys.argv[0] = "lab"; app()' "$@"
"""


def _install(root: Path, commit: str, install: Path, state: Path, config_file: Path, rebuild_env: bool) -> None:
    """src/ at `commit`, venv/ (unless kept), bin/grade; everything root's and read-only to others."""
    install.mkdir(parents=True, exist_ok=True)
    os.chmod(install, 0o755)
    new = Path(tempfile.mkdtemp(prefix=".src-", dir=install))
    store = object_store(root, new)  # `git archive` runs no filter of the repository's config
    archive = subprocess.run(["git", "archive", "--format=tar", commit, *INSTALLED], cwd=store, capture_output=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": str(new), **SAFE_GIT})
    shutil.rmtree(store)
    if archive.returncode != 0:
        raise ProtectError(f"`git archive {commit[:12]}` failed in {root}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "--no-same-owner", "-C", str(new)], input=archive.stdout, check=True)
    shutil.rmtree(install / "src", ignore_errors=True)
    os.rename(new, install / "src")
    if rebuild_env or not (install / "venv" / "bin" / "python").exists():
        shutil.rmtree(install / "venv", ignore_errors=True)
        build_env(install / "src", install / "venv")
    # byte-compile src/ as root into the root-owned tree (the grader runs with -B; the venv is compiled already)
    _run(str(install / "venv" / "bin" / "python"), "-m", "compileall", "-q", str(install / "src"),
         env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})
    (install / "bin").mkdir(exist_ok=True)
    (install / "bin" / "grade").write_text(WRAPPER.format(state=state, config=config_file, install=install))
    (install / "bin" / "lab").write_text(LAB.format(install=install))
    for name in ("grade", "lab"):
        os.chmod(install / "bin" / name, 0o755)
    for path in [install, *(p for sub in ("src", "bin") for p in [install / sub, *(install / sub).rglob("*")])]:  # venv/: uv's
        if not path.is_symlink():
            os.chown(path, 0, 0)
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if stat.S_ISDIR(mode) else 0o555 if mode & 0o100 else 0o444)


def _user(name: str, home: Path) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        _run("useradd", "--system", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
             "--user-group", name)
        return pwd.getpwnam(name)


def _state(state: Path, user: pwd.struct_passwd, source: Path | None, install: Path) -> tuple[str, str, str]:
    """The grader's state dir, its key pair (made once) and data cache; (public key hex, source, data cache)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    for sub, mode in (("", 0o755), ("ledger", 0o755), ("runs", 0o755), ("data", 0o700), ("tmp", 0o700), ("private", 0o700)):
        (state / sub).mkdir(parents=True, exist_ok=True)
        os.chown(state / sub, user.pw_uid, user.pw_gid)
        os.chmod(state / sub, mode)
    book = state / "ledger" / ledger.FILENAME
    if not book.exists():
        book.write_text(ledger.HEADER)
    key_file = state / "private" / "grader.key"
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_file.read_text().strip()))
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    (install / "grader.pub").write_text(public + "\n")
    os.chmod(install / "grader.pub", 0o444)
    tests = state / "private" / "test.tsv"
    if not tests.exists():
        tests.write_text("run_id\tslug\tcommit\tseed\tval_bpb\ttest_bpb\n")
    src = str(source.resolve()) if source else ""
    build = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; import prepare; "
             "print(prepare.build(Path(sys.argv[3]) if sys.argv[3] else None, Path(sys.argv[2])).dir)")
    data_dir = _run(str(install / "venv" / "bin" / "python"), "-I", "-B", "-c", build, str(install / "src"),
                    str(state / "data"), src, env={"PATH": "/usr/bin:/bin"}).strip().splitlines()[-1]
    for path in [state, *state.rglob("*")]:
        os.lchown(path, user.pw_uid, user.pw_gid)
    return public, src, data_dir


def _sudoers(cfg: Config) -> None:
    rule = (f"# lab protected mode for {cfg.repo} (`lab unprotect` removes this file)\n"
            f"Defaults!{cfg.grade} env_reset, !setenv\n"
            f"{cfg.researcher} ALL=({cfg.user}) NOPASSWD: {cfg.grade}\n")
    tmp = Path(cfg.sudoers + ".tmp")
    tmp.write_text(rule)
    os.chmod(tmp, 0o440)
    try:
        _run("visudo", "-c", "-q", "-f", str(tmp))
    except ProtectError:
        tmp.unlink()
        raise
    os.rename(tmp, cfg.sudoers)


def frozen_without_journal(root: Path, old: str, new: str) -> list[str]:
    """Frozen paths changed between `old` and `new` when meta_journal.md gained no entry there; [] if fine."""
    changed = _git(root, "diff", "--name-only", "--no-renames", old, new, "--", *taxonomy.patterns_of("FROZEN")).splitlines()
    changed = [p for p in changed if p != journal_format.META]
    if not changed:
        return []
    added = [line for line in _git(root, "diff", old, new, "--", journal_format.META).splitlines()
             if line.startswith("+## ")]
    return [] if added else changed


def protect(root: Path, researcher: str | None, user: str = DEFAULT_USER, source: Path | None = None,
            update: bool = False) -> str:
    """Turn protection on (or `update` the grader to main's commit); one line on what was done."""
    if os.geteuid() != 0:
        raise ProtectError("protection is set up by root: run `sudo .venv/bin/lab protect`" + (" --update" if update else ""))
    os.umask(0o022)
    root = Path(root).resolve()
    commit = _git(root, "rev-parse", "--verify", f"{names.MAIN}^{{commit}}")
    cfg_file = config_path(root)
    old = config(root)
    if update:
        if old is None:
            raise ProtectError(f"{root} is not protected yet: run `sudo lab protect` first")
        if old.commit == commit:
            return f"the grader is already at main {commit[:12]}"
        if bad := frozen_without_journal(root, old.commit, commit):
            raise ProtectError(f"refused: frozen file(s) {', '.join(bad[:5])} changed between {old.commit[:12]} and main "
                               f"{commit[:12]} without a meta_journal.md entry; commit the entry on main, then rerun")
        lock_changed = bool(_git(root, "diff", "--name-only", old.commit, commit, "--", "uv.lock", "pyproject.toml"))
        _install(root, commit, Path(old.install), Path(old.state), cfg_file, rebuild_env=lock_changed)
        old.commit = commit
        _write_config(old)
        return f"the grader was updated to main {commit[:12]}"
    if old is not None:
        if old.commit != commit:
            return (f"already protected, grader at {old.commit[:12]}; main is at {commit[:12]}: "
                    "`sudo lab protect --update` installs it")
        return f"already protected (grader at main {commit[:12]}, user {old.user})"
    researcher = researcher or os.environ.get("SUDO_USER")
    if not researcher or researcher == "root":
        raise ProtectError("whose evals go through the grader? run with sudo from the researcher's account or pass --researcher NAME")
    try:
        pwd.getpwnam(researcher)
    except KeyError:
        raise ProtectError(f"--researcher {researcher}: no such user") from None
    rid = repo_id(root)
    install, state = INSTALL_ROOT / rid, STATE_ROOT / rid
    account = _user(user, state)
    _install(root, commit, install, state, cfg_file, rebuild_env=True)
    public, src, data_dir = _state(state, account, source, install)
    mirror = (root / ledger.FILENAME).read_bytes().split(b"\n")
    lines = len(mirror) - 1 if mirror[-1] == b"" else len(mirror)
    cfg = Config(repo=str(root), researcher=researcher, user=user, install=str(install), state=str(state), commit=commit,
                 source=src, data_dir=data_dir, public_key=public, sudoers=str(SUDOERS_DIR / f"lab-grader-{rid}"), mirror_lines=lines,
                 mirror_sha256=hashlib.sha256(b"\n".join(mirror[:lines]) + b"\n").hexdigest())
    _sudoers(cfg)
    _write_config(cfg)
    return f"protected: grader {user} installed from main {commit[:12]} in {install}; state in {state}"


def _write_config(cfg: Config) -> None:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    for p in (CONFIG_DIR, CONFIG_DIR.parent):
        os.chmod(p, 0o755)
    path = CONFIG_DIR / f"{repo_id(Path(cfg.repo))}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def unprotect(root: Path, purge: bool = False) -> str:
    """Turn protection off: sudoers rule, installation, config, the user (when no other repo uses it)."""
    if os.geteuid() != 0:
        raise ProtectError("protection is turned off by root: run `sudo .venv/bin/lab unprotect`")
    cfg = config(Path(root).resolve())
    if cfg is None:
        return "not protected: nothing to undo"
    Path(cfg.sudoers).unlink(missing_ok=True)
    config_path(Path(cfg.repo)).unlink()
    shutil.rmtree(cfg.install, ignore_errors=True)
    others = [c for c in CONFIG_DIR.glob("*.json") if json.loads(c.read_text()).get("user") == cfg.user]
    if purge:
        shutil.rmtree(cfg.state, ignore_errors=True)
        kept = "state removed"
    else:
        for path in [Path(cfg.state), *Path(cfg.state).rglob("*")]:
            os.lchown(path, 0, 0)
        kept = f"the grader's ledger and private test scores stay in {cfg.state} (root's now)"
    if not others:
        subprocess.run(["userdel", cfg.user], capture_output=True)
    for folder in (INSTALL_ROOT, CONFIG_DIR, CONFIG_DIR.parent) + ((STATE_ROOT,) if purge else ()):
        try:
            folder.rmdir()  # only when empty: another repository's protection stays
        except OSError:
            pass
    return f"unprotected: sudoers rule, installation and grader user removed; {kept}"
