"""Training in a sandbox: the evaluated commit's tree, the train split, one writable directory (bubblewrap).

eval.py materialises the tree of the commit being evaluated from git objects (never the working
copy, which the agent may change after the commit), refuses commits that smuggle in data, and runs
train.py under `bwrap` with:

- a read-only view of the system (/usr and its merged-/usr links, a few /etc files) and of the
  Python environment eval runs with (the venv and its base interpreter, at their own paths);
- /src: the materialised tree (read-only), /data: train.bin alone (read-only), /out: the run's
  output directory, the only writable place besides a private /tmp and home (both tmpfs);
- no network, no host processes (a new pid namespace with its own /proc), no other namespace
  shared, no capabilities, no further user namespaces, a new session (no terminal injection),
  killed with eval (--die-with-parent; the pid namespace ends with its first process, so nothing
  train.py forks outlives it);
- an environment built from an allow-list (ENV), not inherited;
- for CUDA only: the driver's control nodes and the chosen GPUs' /dev/nvidiaN, and /sys read-only
  (gpu_binds; the driver reads the PCI topology there).

Nothing else of the host is mounted: the workspace (results.tsv, .cache, other runs, val.bin,
test.bin, eval.py), $HOME and the host's /tmp do not exist inside. Stdlib only.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lab import names, taxonomy

SRC, DATA, OUT, HOME = "/src", "/data", "/out", "/home/train"
ADDED_FILE_LIMIT = 256 << 10  # one file a commit adds (or changes) beyond main's tree
ADDED_TOTAL_LIMIT = 1 << 20  # all of them together
SANDBOX_UID = 1000
# Copied from eval's environment when set; everything else is dropped. LD_LIBRARY_PATH is there for
# containers that keep the CUDA driver library under it; the sandbox only sees what is bound anyway.
ENV_PASSED = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "NVIDIA_VISIBLE_DEVICES",
              "NVIDIA_DRIVER_CAPABILITIES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTORCH_CUDA_ALLOC_CONF",
              "CUBLAS_WORKSPACE_CONFIG", "TORCH_CUDA_ARCH_LIST", "TORCH_NUM_THREADS", "LD_LIBRARY_PATH")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "passwd", "group", "localtime",
             "alternatives", "hosts", "os-release")  # dynamic linker, user names (getpass), time zone
NAMESPACES = ("--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
              "--cap-drop", "ALL", "--hostname", "sandbox", "--die-with-parent", "--new-session", "--as-pid-1")
GIT_ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}


class Refused(Exception):
    """The tree cannot be trained as it is; the message is one line naming the file and why."""


@dataclass(frozen=True)
class Entry:
    path: str  # repository-relative, posix
    mode: str  # git's: 100644, 100755, 120000 (symlink), 160000 (submodule)
    oid: str
    size: int


def _git(checkout: Path, *args: str, data: bytes | None = None) -> bytes:
    """git with replace objects, fsmonitor and system config off; raises Refused with git's message."""
    proc = subprocess.run(["git", "-c", "core.fsmonitor=false", *args], cwd=checkout, input=data, capture_output=True,
                          env={**os.environ, **GIT_ENV})
    if proc.returncode != 0:
        raise Refused(f"`git {' '.join(args[:3])}` failed in {checkout}: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def tree_entries(checkout: Path, commit: str) -> list[Entry]:
    """Every blob of `commit`'s tree, with its size, from git objects alone."""
    out = _git(checkout, "ls-tree", "-r", "-z", "-l", "--full-tree", commit)
    entries = []
    for record in filter(None, out.split(b"\0")):
        meta, _, path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        entries.append(Entry(path.decode("utf-8", "surrogateescape"), mode, oid, int(size) if kind == "blob" else 0))
    return entries


def worktree_entries(checkout: Path) -> list[Entry]:
    """The working copy's files as git sees them (tracked and untracked, not ignored), hashed like blobs."""
    algo = _git(checkout, "rev-parse", "--show-object-format").decode().strip() or "sha1"
    out = _git(checkout, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    entries = []
    for path in sorted(set(filter(None, out.decode("utf-8", "surrogateescape").split("\0")))):
        full = checkout / path
        if full.is_symlink():
            mode, data = "120000", os.readlink(full).encode("utf-8", "surrogateescape")
        elif full.is_file():
            mode, data = ("100755" if os.access(full, os.X_OK) else "100644"), full.read_bytes()
        else:
            continue  # deleted but still in the index, or a submodule's folder
        oid = hashlib.new(algo, b"blob %d\0" % len(data) + data).hexdigest()
        entries.append(Entry(path, mode, oid, len(data)))
    return entries


def added_problem(entries: list[Entry], base: list[Entry]) -> str | None:
    """Why `entries` add more data than ADDED_*_LIMIT beyond `base` (blobs not in base at any path), or None."""
    known = {e.oid for e in base}
    added = sorted((e for e in entries if e.oid not in known and e.mode != "160000"), key=lambda e: -e.size)
    if added and added[0].size > ADDED_FILE_LIMIT:
        return (f"{added[0].path} adds {added[0].size:,} bytes beyond main's tree, more than {ADDED_FILE_LIMIT >> 10} KiB "
                "per file: data and weights stay out of the commit (training sees train.bin only)")
    total = sum(e.size for e in added)
    if total > ADDED_TOTAL_LIMIT:
        largest = ", ".join(f"{e.path} ({e.size:,})" for e in added[:3])
        return (f"the tree adds {total:,} bytes beyond main's, more than {ADDED_TOTAL_LIMIT >> 20} MiB in all "
                f"(largest: {largest}): data and weights stay out of the commit")
    return None


def _safe_path(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts) or "\0" in path:
        raise Refused(f"the tree holds a path {path!r} that cannot be materialised safely")


def materialize(checkout: Path, commit: str | None, dest: Path, base: str | None = names.MAIN) -> list[Entry]:
    """Write `commit`'s tree (None: the working copy) into the empty directory `dest`; returns its entries.

    Blobs come from `git cat-file --batch` by object id: no checkout, no filters, no hooks, no
    replace objects. Symlinks are kept only when they point inside the tree. GLOBAL files (the
    ledger, the journal) are left out: their live copies are the root checkout's, and training
    needs neither. With `base`, a tree that adds more data than ADDED_*_LIMIT beyond that
    revision's tree is refused first.
    """
    entries = tree_entries(checkout, commit) if commit else worktree_entries(checkout)
    entries = [e for e in entries if not taxonomy.is_global(e.path)]
    if base and (problem := added_problem(entries, tree_entries(checkout, base))):
        raise Refused(problem)
    links = []
    for entry in entries:
        _safe_path(entry.path)
        if entry.mode == "160000":
            raise Refused(f"{entry.path} is a submodule; the sandbox trains one self-contained tree")
        if entry.mode not in ("100644", "100755", "120000"):
            raise Refused(f"{entry.path} has git mode {entry.mode}, which is not a file or a symlink")
    contents = _blobs(checkout, entries) if commit else (_read_working(checkout, e) for e in entries)
    for entry, data in zip(entries, contents, strict=True):
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.mode == "120000":
            links.append((entry, data.decode("utf-8", "surrogateescape")))
            continue
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755 if entry.mode == "100755" else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    for entry, link in links:  # last, so that no file above was written through a link
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(entry.path), link))
        if link.startswith("/") or inside == ".." or inside.startswith("../"):
            raise Refused(f"{entry.path} is a symlink to {link!r}, outside the tree; the sandbox trains the tree alone")
        os.symlink(link, dest / entry.path)
    return entries


def _read_working(checkout: Path, entry: Entry) -> bytes:
    path = checkout / entry.path
    return os.readlink(path).encode("utf-8", "surrogateescape") if entry.mode == "120000" else path.read_bytes()


def _blobs(checkout: Path, entries: list[Entry]) -> list[bytes]:
    """The blobs of `entries` by object id, in one `git cat-file --batch` (raw: no textconv, no filters)."""
    out = _git(checkout, "cat-file", "--batch", data="".join(f"{e.oid}\n" for e in entries).encode())
    blobs, pos = [], 0
    for entry in entries:
        end = out.index(b"\n", pos)
        oid, kind, size = out[pos:end].decode().split()
        if oid != entry.oid or kind != "blob":
            raise Refused(f"{entry.path}: git returned {kind} {oid} for blob {entry.oid}")
        blobs.append(out[end + 1 : end + 1 + int(size)])
        pos = end + 1 + int(size) + 1
    return blobs


def environment() -> dict[str, str]:
    """The sandbox's whole environment: fixed values and ENV_PASSED names copied from eval's."""
    env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "USER": "train",
           "LOGNAME": "train", "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    return {**env, **{k: os.environ[k] for k in ENV_PASSED if k in os.environ}}


def _system_view() -> list[str]:
    args = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def python_dirs() -> list[tuple[str, str]]:
    """(host path, sandbox path) of the Python environment eval runs with: the venv and its base interpreter."""
    pairs: list[tuple[str, str]] = []
    hops = [sys.executable]  # the interpreter's symlink chain (venv/bin/python -> base/bin/python3 -> …)
    while os.path.islink(hops[-1]) and len(hops) < 20:
        hops.append(os.path.join(os.path.dirname(hops[-1]), os.readlink(hops[-1])))
    for path in [sys.prefix, sys.base_prefix, *(os.path.dirname(os.path.dirname(h)) for h in hops[1:])]:
        for view in {os.path.abspath(path), os.path.realpath(path)}:
            covered = any(view == d or view.startswith(d.rstrip("/") + "/") for d in (*SYSTEM_DIRS, *(p for _, p in pairs)))
            if not covered and os.path.isdir(view):
                pairs.append((os.path.realpath(path), view))
    return pairs


# The driver's control and unified-memory nodes; each GPU adds its own /dev/nvidiaN. Not bound: display
# (/dev/nvidia-modeset, /dev/dri) and MIG capability nodes (/dev/nvidia-caps), which CUDA compute does not open.
GPU_CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")


@dataclass(frozen=True)
class Gpu:
    bus: str  # PCI bus id, e.g. 0000:3b:00.0 (nvidia-smi's index order is this order)
    minor: int  # N of /dev/nvidiaN
    uuid: str  # GPU-…, what CUDA_VISIBLE_DEVICES can name unambiguously


def gpus(proc: Path = Path("/proc/driver/nvidia/gpus"), dev: Path = Path("/dev")) -> list[Gpu]:
    """The driver's GPUs in PCI bus order, read from its /proc files (no CUDA, no nvidia-smi).

    Where the driver shows no /proc files (some virtualised kernels), the /dev/nvidiaN nodes in the
    order of N stand in, without uuids: the minors the driver gives follow the bus order.
    """
    if not proc.is_dir():
        minors = sorted(int(n.name[6:]) for n in dev.glob("nvidia[0-9]*") if n.name[6:].isdigit())
        return [Gpu("", minor, "") for minor in minors]
    found = []
    for info in sorted(proc.glob("*/information")):
        fields = dict(line.split(":", 1) for line in info.read_text(errors="replace").splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if not fields.get("Device Minor", "").isdigit():
            raise Refused(f"{info} has no 'Device Minor' line; cannot tell which /dev/nvidiaN is this GPU")
        found.append(Gpu(info.parent.name, int(fields["Device Minor"]), fields.get("GPU UUID", "")))
    return found


def visible_gpus(visible: str | None, all_gpus: list[Gpu]) -> list[Gpu]:
    """The GPUs CUDA_VISIBLE_DEVICES names (indices in PCI order, or GPU-uuid prefixes); all of them without it."""
    if visible is None:
        return all_gpus
    chosen = []
    for name in filter(None, (n.strip() for n in visible.split(","))):
        if name.isdigit() and int(name) < len(all_gpus):
            chosen.append(all_gpus[int(name)])
        elif name.startswith("GPU-") and (match := [g for g in all_gpus if g.uuid.startswith(name)]) and len(match) == 1:
            chosen.append(match[0])
        else:
            raise Refused(f"CUDA_VISIBLE_DEVICES={visible}: {name!r} is not one of this box's {len(all_gpus)} GPU(s) "
                          "(an index in PCI bus order or a GPU-uuid; MIG devices are not supported in the sandbox)")
    return chosen


def gpu_binds(visible: str | None, proc: Path = Path("/proc/driver/nvidia/gpus"), dev: Path = Path("/dev")) -> tuple[list[str], str | None]:
    """bwrap arguments for the GPUs CUDA_VISIBLE_DEVICES names, and that variable's value inside.

    Exactly the control nodes, each chosen GPU's /dev/nvidiaN and /sys read-only (the driver reads the PCI
    topology and NUMA nodes there; it holds no workspace data). Inside, CUDA_VISIBLE_DEVICES names the chosen
    GPUs by uuid (by their new numbers where the driver gives no uuids), so CUDA sees the GPUs eval chose.
    """
    chosen = visible_gpus(visible, gpus(proc, dev))
    if not chosen:
        raise Refused(f"no NVIDIA GPU listed under {proc} or {dev}: the sandbox cannot bind a GPU for a CUDA run")
    nodes = [f"{dev}/{n}" for n in (*GPU_CONTROL_NODES, *(f"nvidia{g.minor}" for g in chosen)) if os.path.exists(f"{dev}/{n}")]
    for need in (f"{dev}/nvidiactl", *(f"{dev}/nvidia{g.minor}" for g in chosen)):
        if need not in nodes:
            raise Refused(f"{need} does not exist: the sandbox cannot bind the GPU's device node")
    # with only the chosen nodes there, CUDA numbers those alone, from 0 (as nvidia-docker's device binds do)
    inside = ",".join(g.uuid for g in chosen) if all(g.uuid for g in chosen) else ",".join(map(str, range(len(chosen))))
    return [arg for node in nodes for arg in ("--dev-bind", node, node)] + ["--ro-bind", "/sys", "/sys"], inside


def command(argv: list[str], *, tree: Path, train_bin: Path, out_dir: Path, device: str,
            files: dict[str, Path] | None = None) -> list[str]:
    """The bwrap command line that runs `argv` (written with SRC, DATA and OUT paths) in the sandbox.

    Raises Refused when a CUDA device's nodes cannot be found. `files` maps extra sandbox paths to host files
    bound read-only (e.g. eval's own type-check launcher).
    """
    env, gpu_args = environment(), []
    if device.startswith("cuda"):
        gpu_args, inside = gpu_binds(os.environ.get("CUDA_VISIBLE_DEVICES"))
        env.update({"CUDA_VISIBLE_DEVICES": inside} if inside else {}, CUDA_DEVICE_ORDER="PCI_BUS_ID")
    args = [shutil.which("bwrap") or "bwrap", *NAMESPACES, "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/dev/shm", "--tmpfs", "/tmp", "--tmpfs", HOME]
    args += _system_view()
    for host, view in python_dirs():
        args += ["--ro-bind", host, view]
    args += ["--tmpfs", DATA, "--ro-bind", str(train_bin), f"{DATA}/train.bin", "--remount-ro", DATA]
    args += ["--ro-bind", str(tree), SRC, "--bind", str(out_dir), OUT]
    for view, host in (files or {}).items():
        args += ["--ro-bind", str(host), view]
    return [*args, *gpu_args, "--remount-ro", "/", "--chdir", SRC, "--", *argv]


@cache
def available() -> tuple[bool, str]:
    """(True, "bwrap 0.8.0") when bwrap can build this module's sandbox here, else (False, one line naming the fix)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False, "bubblewrap is not installed (`apt-get install bubblewrap`, or your distribution's package)"
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
        probe = subprocess.run([exe, *NAMESPACES, "--clearenv", "--proc", "/proc", "--dev", "/dev", *_system_view(), "--",
                                "true"], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bwrap could not be run: {e}"
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or [f"exit code {probe.returncode}"])[-1]
        return False, (f"bwrap cannot create its sandbox here ({why}); user namespaces may be disabled "
                       "(sysctl kernel.unprivileged_userns_clone=1, or a container's seccomp/AppArmor profile)")
    return True, f"bwrap {version[-1] if version else '?'}"
