"""Protected mode, the side every eval and `lab status` reads: whether a repository is protected, its rows verified
against the grader's signed ledger, and the call that hands a run to the installed grader.

The grader is installed as its own OS user, reached through one sudoers rule, and signs every row; turning it on
and off is lab/grader/admin.py's (the human's, with sudo). From then on a real eval trains and grades there, and
results.tsv in the repository is a mirror whose rows `lab ledger check` verifies. Where the installation is
recorded (CONFIG_DIR) is fixed and root-owned: nothing the researcher's user can write says whether the
repository is protected.

Stdlib only at import: `lab status` asks `config()` on every call; signatures load `cryptography` lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab import ledger

CONFIG_DIR = Path("/etc/lab/protected")  # one root-owned JSON per protected repository
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


def root_owned(path: Path) -> bool:
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
    if not root_owned(path):
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


def object_store(repo: Path, tmp: Path) -> Path:
    """A bare git directory of our own whose one link to `repo` is its object store: none of the repository's
    config (filters, fsmonitor, hooks), attributes or replace refs is read through it."""
    gitdir = tmp / "objects.git"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp), **SAFE_GIT}
    subprocess.run(["git", "init", "-q", "--bare", str(gitdir)], check=True, env=env, capture_output=True)
    (gitdir / "objects" / "info" / "alternates").write_text(str(Path(repo) / ".git" / "objects") + "\n")
    return gitdir
