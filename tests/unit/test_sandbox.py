"""lab/grader/sandbox.py: the tree eval trains comes from git objects; bwrap shows train.bin and /out, nothing else.

Materialisation runs against real throwaway git repositories (replace objects, a smudge filter and
an fsmonitor hook that would leave markers if git ran them). The sandbox tests run small Python
probes (no torch) under the real bwrap argv; they skip themselves where bwrap cannot run.
Cost: ~15 s on 2 CPU cores. Run: `just test tests/unit/test_sandbox.py`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import git

from lab.grader import sandbox

BOXED, LINE = sandbox.available()
needs_bwrap = pytest.mark.skipif(not BOXED, reason=f"bwrap cannot run here: {LINE}")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository on main: train.py, an executable script, a link inside, committed."""
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('committed')\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "pkg" / "model.py").write_text("X = 1\n")
    (root / "model_link.py").symlink_to("pkg/model.py")
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "base", cwd=root)
    return root


def head(root: Path) -> str:
    return git("rev-parse", "HEAD", cwd=root).strip()


def test_the_commit_is_materialised_from_git_objects_not_the_working_copy(repo, tmp_path):
    commit = head(repo)
    (repo / "train.py").write_text("print('edited after the commit')\n")
    (repo / "untracked.py").write_text("print('never committed')\n")
    dest = tmp_path / "tree"
    dest.mkdir()
    sandbox.materialize(repo, commit, dest)
    assert (dest / "train.py").read_text() == "print('committed')\n"
    assert not (dest / "untracked.py").exists()
    assert os.access(dest / "run.sh", os.X_OK) and not os.access(dest / "train.py", os.X_OK)
    assert os.readlink(dest / "model_link.py") == "pkg/model.py" and (dest / "model_link.py").read_text() == "X = 1\n"


def test_replace_objects_filters_and_fsmonitor_are_never_run(repo, tmp_path):
    marker = tmp_path / "marker"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho ran >> {marker}\ncat\n")
    hook.chmod(0o755)
    (repo / ".gitattributes").write_text("*.py filter=evil\n")
    git("config", "filter.evil.smudge", str(hook), cwd=repo)
    git("config", "filter.evil.clean", "cat", cwd=repo)
    git("config", "core.fsmonitor", str(hook), cwd=repo)
    git("add", ".gitattributes", cwd=repo)
    git("commit", "-qm", "attributes", cwd=repo)
    marker.unlink(missing_ok=True)
    # a replace object would swap train.py's blob for another one
    fake = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=b"print('replaced')\n",
                          capture_output=True, check=True).stdout.decode().strip()
    real = git("rev-parse", "HEAD:train.py", cwd=repo).strip()
    git("replace", real, fake, cwd=repo)
    assert git("cat-file", "-p", real, cwd=repo) == "print('replaced')\n"  # git itself honours it
    for commit in (head(repo), None):
        dest = tmp_path / f"tree-{commit is None}"
        dest.mkdir()
        sandbox.materialize(repo, commit, dest)
        assert (dest / "train.py").read_text() == "print('committed')\n"
    assert not marker.exists(), "git ran the smudge filter or the fsmonitor hook"


@pytest.mark.parametrize("link", ["/etc/passwd", "../outside.py", "pkg/../../outside.py"])
def test_a_symlink_out_of_the_tree_is_refused(repo, tmp_path, link):
    (repo / "escape.py").symlink_to(link)
    git("add", "escape.py", cwd=repo)
    git("commit", "-qm", "escape", cwd=repo)
    dest = tmp_path / "tree"
    dest.mkdir()
    with pytest.raises(sandbox.Refused, match=r"escape\.py is a symlink to .*outside the tree"):
        sandbox.materialize(repo, head(repo), dest)


def test_the_working_copy_is_materialised_for_smoke(repo, tmp_path):
    (repo / "train.py").write_text("print('work in progress')\n")
    (repo / "new.py").write_text("Y = 2\n")
    (repo / ".gitignore").write_text("ignored.bin\n")
    (repo / "ignored.bin").write_bytes(b"\0" * 10)
    dest = tmp_path / "tree"
    dest.mkdir()
    sandbox.materialize(repo, None, dest)
    assert (dest / "train.py").read_text() == "print('work in progress')\n" and (dest / "new.py").exists()
    assert not (dest / "ignored.bin").exists()


def commit_file(repo: Path, name: str, size: int) -> str:
    (repo / name).write_bytes(os.urandom(size))
    git("add", name, cwd=repo)
    git("commit", "-qm", f"add {name}", cwd=repo)
    return head(repo)


def test_a_commit_adding_data_beyond_main_is_refused_naming_the_file(repo, tmp_path):
    git("checkout", "-q", "-b", "exp/data", cwd=repo)
    commit_file(repo, "small.bin", 100 << 10)  # 100 KiB: fine
    sandbox.materialize(repo, head(repo), tmp_path / "ok")
    big = commit_file(repo, "weights.bin", sandbox.ADDED_FILE_LIMIT + 1)
    with pytest.raises(sandbox.Refused, match=r"weights\.bin adds 262,145 bytes beyond main's tree"):
        sandbox.materialize(repo, big, tmp_path / "big")
    git("rm", "-q", "weights.bin", cwd=repo)
    for i in range(5):
        many = commit_file(repo, f"part{i}.bin", 240 << 10)
    with pytest.raises(sandbox.Refused, match=r"more than 1 MiB in all \(largest: part"):
        sandbox.materialize(repo, many, tmp_path / "many")
    # what main already holds is not added data
    git("checkout", "-q", "main", cwd=repo)
    git("merge", "-q", "exp/data", cwd=repo)
    sandbox.materialize(repo, head(repo), tmp_path / "merged")


def test_working_copy_data_counts_too(repo, tmp_path):
    (repo / "dump.bin").write_bytes(os.urandom(sandbox.ADDED_FILE_LIMIT + 1))
    with pytest.raises(sandbox.Refused, match=r"dump\.bin adds"):
        sandbox.materialize(repo, None, tmp_path / "tree")


def test_available_names_the_fix_when_bwrap_is_missing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    ok, line = sandbox.available.__wrapped__()
    assert not ok and "apt-get install bubblewrap" in line


PROBE = r"""
import json, os, socket, sys
report = {"env": dict(os.environ), "root": sorted(os.listdir("/")), "data": os.listdir("/data"),
          "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()), "uid": os.getuid(),
          "caps": next(l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")),
          "writable": [], "visible": {p: sorted(os.listdir(p)) if os.path.isdir(p) else "file"
                                      for p in sys.argv[1:] if os.path.exists(p)}}
for path in ["/out/x", "/tmp/x", "/home/train/x", "/src/x", "/data/x", "/x", "/usr/x", "/etc/x", sys.prefix + "/x"]:
    try:
        open(path, "w").write("x")
        report["writable"].append(path)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", int(os.environ.get("LAB_PORT", "1"))), timeout=2)
    report["network"] = "connected"
except OSError as e:
    report["network"] = type(e).__name__
print(json.dumps(report))
"""


def boxed(tmp_path: Path, code: str, *args: str, device: str = "cpu") -> subprocess.CompletedProcess:
    tree, out, data = tmp_path / "tree", tmp_path / "out", tmp_path / "cache"
    for d in (tree, out, data):
        d.mkdir(exist_ok=True)
    (tree / "probe.py").write_text(code)
    for split in ("train", "val", "test"):
        (data / f"{split}.bin").write_bytes(split.encode() * 100)
    cmd = sandbox.command([sys.executable, f"{sandbox.SRC}/probe.py", *args], tree=tree, train_bin=data / "train.bin",
                          out_dir=out, device=device)
    return subprocess.run(cmd, env=sandbox.environment(), capture_output=True, text=True, timeout=60)


@needs_bwrap
def test_the_sandbox_shows_train_bin_and_out_and_nothing_of_the_host(tmp_path, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    monkeypatch.setenv("LAB_PORT", str(listener.getsockname()[1]))  # not in the allow-list: never reaches the sandbox
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    host_paths = [str(tmp_path / "cache" / "val.bin"), str(tmp_path), str(Path.home()), str(Path(__file__).parents[2] / "results.tsv"),
                  "/work", f"/proc/{os.getpid()}"]
    proc = boxed(tmp_path, PROBE, *host_paths)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert set(report["env"]) <= {*sandbox.environment(), "PWD"} and "SECRET_TOKEN" not in report["env"]
    assert report["data"] == ["train.bin"]
    # the only host paths that exist inside are the folders above the Python environment's mount points, empty but for them
    scaffolding = {str(parent): sorted({Path(view).relative_to(parent).parts[0] for _, view in sandbox.python_dirs()
                                        if Path(view).is_relative_to(parent) and Path(view) != parent})
                   for _, view in sandbox.python_dirs() for parent in Path(view).parents}
    assert {p: v for p, v in report["visible"].items() if scaffolding.get(p) != v} == {}, "host paths are visible"
    assert report["writable"] == ["/out/x", "/tmp/x", "/home/train/x"]
    assert (tmp_path / "out" / "x").read_text() == "x" and not Path("/tmp/x").exists()
    assert report["pids"] == ["1"] and report["uid"] == sandbox.SANDBOX_UID and int(report["caps"], 16) == 0
    assert report["network"] in ("ConnectionRefusedError", "OSError")
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):
        listener.accept()
    assert not any(node.startswith("/dev/nvidia") for node in sandbox.command(["true"], tree=tmp_path, train_bin=tmp_path,
                                                                              out_dir=tmp_path, device="cpu"))


@needs_bwrap
def test_nothing_train_forks_outlives_it(tmp_path):
    late = "/out/written-after-exit"
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(2)
        open({late!r}, "w").write("still alive")
    os._exit(0)
print("parent exits")
"""
    start = time.monotonic()
    proc = boxed(tmp_path, code)
    assert proc.returncode == 0 and "parent exits" in proc.stdout
    assert time.monotonic() - start < 2, "bwrap waited for the detached child"
    time.sleep(3)
    assert not (tmp_path / "out" / "written-after-exit").exists()


def fake_driver(tmp_path: Path) -> tuple[Path, Path]:
    """The NVIDIA driver's /proc files and /dev nodes for two GPUs whose minors run against the PCI order."""
    proc, dev = tmp_path / "proc-gpus", tmp_path / "dev"
    for bus, minor, uuid in (("0000:1a:00.0", 1, "GPU-aaaa-1111"), ("0000:3b:00.0", 0, "GPU-bbbb-2222")):
        (proc / bus).mkdir(parents=True)
        (proc / bus / "information").write_text(f"Model: \t NVIDIA H100\nIRQ: 42\nGPU UUID: \t {uuid}\n"
                                                f"Device Minor: \t {minor}\nBus Location: \t {bus}\n")
    (dev / "dri").mkdir(parents=True)
    for node in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia0", "nvidia1"):
        (dev / node).write_text("")
    return proc, dev


def test_cuda_binds_exactly_the_control_nodes_and_the_chosen_gpu(tmp_path):
    """Slot 1's GPU is the second in PCI order (minor 0 here): its node alone, named by uuid inside."""
    proc, dev = fake_driver(tmp_path)
    args, inside = sandbox.gpu_binds("1", proc, dev)
    bound = [args[i + 1] for i, a in enumerate(args) if a == "--dev-bind"]
    assert bound == [f"{dev}/nvidiactl", f"{dev}/nvidia-uvm", f"{dev}/nvidia-uvm-tools", f"{dev}/nvidia0"]
    assert inside == "GPU-bbbb-2222" and args[-3:] == ["--ro-bind", "/sys", "/sys"]
    assert not any("modeset" in a or "dri" in a for a in args)
    every, inside = sandbox.gpu_binds(None, proc, dev)
    assert [every[i + 1] for i, a in enumerate(every) if a == "--dev-bind"][-2:] == [f"{dev}/nvidia1", f"{dev}/nvidia0"]
    assert inside == "GPU-aaaa-1111,GPU-bbbb-2222"
    assert sandbox.gpu_binds("GPU-aaaa", proc, dev)[1] == "GPU-aaaa-1111"


def test_cuda_without_a_bindable_gpu_is_refused_with_the_reason(tmp_path):
    proc, dev = fake_driver(tmp_path)
    with pytest.raises(sandbox.Refused, match=r"CUDA_VISIBLE_DEVICES=5: '5' is not one of this box's 2 GPU"):
        sandbox.gpu_binds("5", proc, dev)
    with pytest.raises(sandbox.Refused, match="MIG devices are not supported"):
        sandbox.gpu_binds("MIG-1234", proc, dev)
    (dev / "nvidia0").unlink()
    with pytest.raises(sandbox.Refused, match=r"dev/nvidia0 does not exist"):
        sandbox.gpu_binds("1", proc, dev)
    no_proc = sandbox.gpu_binds("0", tmp_path / "nothing", dev)  # no /proc files: the nodes in minor order (nvidia0 is gone)
    assert [no_proc[0][i + 1] for i, a in enumerate(no_proc[0]) if a == "--dev-bind"][-1] == f"{dev}/nvidia1"
    assert no_proc[1] == "0"
    with pytest.raises(sandbox.Refused, match="no NVIDIA GPU listed"):
        sandbox.gpu_binds(None, tmp_path / "nothing", tmp_path / "empty-dev")
    (proc / "0000:1a:00.0" / "information").write_text("Model: NVIDIA H100\n")
    with pytest.raises(sandbox.Refused, match="no 'Device Minor' line"):
        sandbox.gpu_binds(None, proc, dev)


def test_gpu_nodes_and_sys_are_bound_only_for_cuda(tmp_path):
    cpu = sandbox.command(["true"], tree=tmp_path, train_bin=tmp_path, out_dir=tmp_path, device="cpu")
    assert "/sys" not in cpu and "--dev-bind" not in cpu and "CUDA_DEVICE_ORDER" not in cpu
    if not sandbox.gpus():  # this box has no NVIDIA driver: a CUDA sandbox is refused before it starts
        with pytest.raises(sandbox.Refused, match="no NVIDIA GPU listed"):
            sandbox.command(["true"], tree=tmp_path, train_bin=tmp_path, out_dir=tmp_path, device="cuda")
        return
    cuda = sandbox.command(["true"], tree=tmp_path, train_bin=tmp_path, out_dir=tmp_path, device="cuda:0")
    assert "/sys" in cuda and "/dev/nvidiactl" in cuda and "PCI_BUS_ID" in cuda


def test_global_files_are_left_out_of_the_tree(repo, tmp_path):
    (repo / "results.tsv").write_text("run_id\n")
    (repo / "RESEARCH_JOURNAL.md").write_text("# journal\n")
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "ledger and journal", cwd=repo)
    for commit in (head(repo), None):
        dest = tmp_path / f"tree-{commit is None}"
        sandbox.materialize(repo, commit, dest)
        assert (dest / "train.py").exists() and not (dest / "results.tsv").exists()
        assert not (dest / "RESEARCH_JOURNAL.md").exists()


def test_a_real_eval_without_bwrap_is_refused_with_the_fix_and_writes_no_row(tmp_path, corpus):
    from conftest import make_workspace, run_env

    ws = make_workspace(tmp_path / "ws")
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for folder in run_env()["PATH"].split(os.pathsep):
        for name in os.listdir(folder) if os.path.isdir(folder) else []:
            if name != "bwrap" and not (bin_dir / name).exists() and os.access(os.path.join(folder, name), os.X_OK):
                (bin_dir / name).symlink_to(os.path.join(folder, name))
    before = (ws / "results.tsv").read_bytes()
    proc = subprocess.run([sys.executable, str(ws / "eval.py"), "--source", str(corpus)], cwd=ws,
                          env=run_env(PATH=str(bin_dir)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert "apt-get install bubblewrap" in line and "--unsandboxed" in line
    assert (ws / "results.tsv").read_bytes() == before
