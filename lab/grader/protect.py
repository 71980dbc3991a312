"""Protected mode: the grader installed as its own OS user, reached through one sudoers rule, signing every row.

`sudo lab protect` (run once by the human) installs eval.py, prepare.py and lab/ at main's commit into a
root-owned place with its own Python environment, creates the grader's user and state (data cache with
val and test, the authoritative ledger, run artifacts, an Ed25519 key only the grader can read) and a
sudoers rule that lets the researcher run exactly the grader's entry point (lab/grader/grade.py) as that user.
From then on a real eval trains and grades there, and results.tsv in the repository is a mirror whose
rows `lab ledger check` verifies. Where the installation is recorded (CONFIG_DIR) is fixed and
root-owned: nothing the researcher's user can write says whether the repository is protected.

Stdlib only at import: `lab status` asks `config()` on every call; signatures load `cryptography` lazily.
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
from dataclasses import asdict, dataclass
from pathlib import Path

from lab import journal_format, ledger, names, tables, taxonomy

CONFIG_DIR = Path("/etc/lab/protected")  # one root-owned JSON per protected repository
INSTALL_ROOT, STATE_ROOT, SUDOERS_DIR = Path("/opt/lab-grader"), Path("/var/lib/lab-grader"), Path("/etc/sudoers.d")
DEFAULT_USER = "lab-grader"
INSTALLED = ("eval.py", "prepare.py", "lab", "pyproject.toml", "uv.lock")  # the grader and what it imports
SIGNED = b"lab-row-v1\n"  # domain prefix of every signed line
SAFE_GIT = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0", "GIT_ATTR_NOSYSTEM": "1"}
UNPROTECTED = "UNPROTECTED: rows are unsigned and any process of this user can write results.tsv; protect with `sudo .venv/bin/lab protect`"


class ProtectError(RuntimeError):
    """Protection cannot be turned on, off or used as asked; one line that says why."""


@dataclass
class Config:
    repo: str  # the root checkout (realpath)
    researcher: str  # the user the sudoers rule is for
    user: str  # the grader's user
    install: str  # root-owned: src/, venv/, bin/grade, grader.pub
    state: str  # the grader's: data/, ledger/results.tsv, runs/, private/ (key, test scores)
    commit: str  # main's commit the grader was installed from (grader_sha)
    source: str  # the data source the grader's cache was built from
    data_dir: str  # that cache (train, val, test and the manifest), the grader's
    public_key: str  # hex, Ed25519
    sudoers: str
    mirror_lines: int  # results.tsv's lines when protection went on: unsigned rows from before, not forgeries
    mirror_sha256: str

    @property
    def grade(self) -> str:
        return f"{self.install}/bin/grade"

    @property
    def ledger(self) -> Path:
        return Path(self.state) / "ledger" / ledger.FILENAME


def repo_id(root: Path) -> str:
    return hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]


def config_path(root: Path) -> Path:
    return CONFIG_DIR / f"{repo_id(root)}.json"


def _root_owned(path: Path) -> bool:
    """Whether `path` and every folder above it are root's and writable by no one else."""
    for p in [path, *path.parents]:
        st = os.lstat(p)
        if st.st_uid != 0 or st.st_mode & 0o022:
            return False
    return True


def config(root: Path) -> Config | None:
    """The protection of the repository at `root`, or None when it is unprotected."""
    path = config_path(root)
    if not path.exists():
        return None
    if not _root_owned(path):
        raise ProtectError(f"{path} is not root's alone (owner or mode): protection cannot be trusted; rerun `sudo lab protect`")
    return Config(**json.loads(path.read_text()))


def mode_line(root: Path) -> str:
    """The first line of `lab status`, `lab digest` and eval's summary."""
    cfg = config(root)
    if cfg is None:
        return UNPROTECTED
    return f"PROTECTED: rows signed by the grader (user {cfg.user}, installed from main {cfg.commit[:12]})"


# ------------------------------------------------------------------------------------- verified rows


def authoritative(cfg: Config) -> dict[str, dict]:
    rows, _ = ledger.read(cfg.ledger)
    return {r["run_id"]: r for r in rows}


def verified(root: Path, rows: list[dict]) -> tuple[list[dict], str | None]:
    """The rows the grader wrote (the same row in its own ledger) and a note on those left out; all rows unprotected."""
    cfg = config(root)
    if cfg is None:
        return rows, None
    theirs = authoritative(cfg)
    kept = [r for r in rows if theirs.pop(r["run_id"], None) == r]  # pop: a copied line counts once
    left = len(rows) - len(kept)
    note = (f"{left} row(s) of results.tsv left out: not in the grader's ledger as they are (unsigned, edited or forged; "
            "`lab ledger check` names them)") if left else None
    return kept, note


def _public_key(cfg: Config):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(cfg.public_key))


def canonical(line: str) -> bytes:
    """The bytes a row's signature covers: its line with the signature cell (the last column) empty."""
    return SIGNED + (line.rstrip("\n").rsplit("\t", 1)[0] + "\t").encode()


def signature_ok(cfg: Config, line: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    sig = line.rstrip("\n").rsplit("\t", 1)[-1]
    try:
        _public_key(cfg).verify(bytes.fromhex(sig), canonical(line))
        return True
    except (ValueError, InvalidSignature):
        return False


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", "replace").splitlines()[1:]


def check(root: Path, mirror: Path) -> list[str]:
    """Every signature of the mirror, and the mirror against the grader's ledger: one line per bad row."""
    cfg = config(root)
    if cfg is None:
        raise ProtectError("this repository is not protected: there is no grader's ledger to compare with")
    problems = []
    data = mirror.read_bytes()
    before = data.split(b"\n")
    old = cfg.mirror_lines if hashlib.sha256(b"\n".join(before[: cfg.mirror_lines]) + b"\n").hexdigest() == cfg.mirror_sha256 else 1
    theirs = _lines(cfg.ledger)
    at = {line.split("\t", 1)[0]: i for i, line in enumerate(theirs)}
    order, seen = [], set()
    for n, line in enumerate(_lines(mirror), start=2):
        if n <= old:
            continue  # rows from before protection, unchanged since (unsigned; readers leave them out)
        run_id = line.split("\t", 1)[0]
        if run_id in seen:
            problems.append(f"{mirror}:{n}: run {run_id}: extra, a second line for a run the mirror already holds")
            continue
        seen.add(run_id)
        if not signature_ok(cfg, line):
            problems.append(f"{mirror}:{n}: run {run_id}: signature does not verify (forged or edited row)")
        if run_id not in at:
            problems.append(f"{mirror}:{n}: run {run_id}: extra, not in the grader's ledger")
        elif theirs[at[run_id]] != line:
            problems.append(f"{mirror}:{n}: run {run_id}: edited, differs from the grader's line {at[run_id] + 2}")
        else:
            order.append((at[run_id], n, run_id))
    for i, line in enumerate(theirs):
        run_id = line.split("\t", 1)[0]
        if run_id not in seen:
            problems.append(f"{mirror}: run {run_id}: missing, the grader's line {i + 2} is not in the mirror")
    last = -1
    for i, n, run_id in order:
        if i < last:
            problems.append(f"{mirror}:{n}: run {run_id}: reordered, the grader wrote it before the line above it")
        last = max(last, i)
    return problems


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


# ------------------------------------------------------------------------------------- the caller's side


def grade(cfg: Config, argv: list[str]) -> dict:
    """Run the installed grader through sudo with `argv` (its validated options); the signed row it returns.

    Its log goes to our stderr as it comes; stdout carries one JSON row. Raises ProtectError with its reason.
    """
    import signal

    cmd = ["sudo", "-n", "-u", cfg.user, cfg.grade, *argv]
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
    except OSError as e:
        raise ProtectError(f"cannot run `{' '.join(cmd[:5])}`: {e}") from None
    # a kill meant for this eval goes to sudo, which relays it to the grader: it writes the signed `killed` row
    kept = {sig: signal.signal(sig, lambda signum, _f: proc.send_signal(signum))
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        out = proc.stdout.read()
        rc = proc.wait()
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)
    try:
        row = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ProtectError(f"the grader (`sudo -n -u {cfg.user} {cfg.grade}`) exited {rc} without a row") from None
    if not isinstance(row, dict) or "error" in row:
        raise ProtectError(f"the grader refused: {row.get('error') if isinstance(row, dict) else row}")
    return row


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


def object_store(repo: Path, tmp: Path) -> Path:
    """A bare git directory of our own whose one link to `repo` is its object store: none of the repository's
    config (filters, fsmonitor, hooks), attributes or replace refs is read through it."""
    gitdir = tmp / "objects.git"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), **SAFE_GIT}
    subprocess.run(["git", "init", "-q", "--bare", str(gitdir)], check=True, env=env, capture_output=True)
    (gitdir / "objects" / "info" / "alternates").write_text(str(Path(repo) / ".git" / "objects") + "\n")
    return gitdir


def _python() -> str:
    """A root-owned interpreter of this Python's version that every user can run (the grader's base)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (Path(os.path.realpath(sys.base_prefix)) / "bin" / version, Path("/usr/bin") / version,
                Path("/usr/local/bin") / version):
        if exe.is_file() and _root_owned(Path(os.path.realpath(exe))) and all(
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
    if not (cache.is_dir() and _root_owned(cache)):
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
