"""prepare.py: deterministic offline corpus, splits by path hash, verified no-op re-runs, loud failures.

Runs on the synthetic corpus from conftest.py; ~2 s in all (fast set). Run: `just test tests/unit/test_prepare.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

import prepare


def test_build_is_deterministic_and_independent_of_cache_location(corpus, tmp_path):
    dir_a, manifest_a, _ = prepare.build(corpus, tmp_path / "a")
    dir_b, manifest_b, _ = prepare.build(corpus, tmp_path / "b")
    assert manifest_a == manifest_b
    for split in prepare.SPLITS:
        assert (dir_a / f"{split}.bin").read_bytes() == (dir_b / f"{split}.bin").read_bytes()
    assert sum(manifest_a["files"].values()) == 300
    assert 0.04 < (manifest_a["files"]["val"] + manifest_a["files"]["test"]) / 300 < 0.2


def test_split_depends_on_the_path_only(corpus, tmp_path):
    assert [prepare.split_of(p) for p in ("a.py", "pkg0/mod_0.py", "json/decoder.py")] == \
        [prepare.split_of(p) for p in ("a.py", "pkg0/mod_0.py", "json/decoder.py")]
    source = tmp_path / "src"
    source.mkdir()
    for i in range(200):
        (source / f"f{i}.txt").write_text(f"file {i}\n" * 20)
    _, before, _ = prepare.build(source, tmp_path / "c1")
    (source / "f7.txt").write_text("entirely different content\n" * 50)
    _, after, _ = prepare.build(source, tmp_path / "c2")
    assert before["files"] == after["files"]
    changed = [s for s in prepare.SPLITS if before["sha256"][s] != after["sha256"][s]]
    assert changed == [prepare.split_of("f7.txt")]


def test_rerun_verifies_and_changes_nothing(corpus, tmp_path):
    directory, manifest, built = prepare.build(corpus, tmp_path)
    assert built
    stamps = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    assert prepare.build(corpus, tmp_path) == (directory, manifest, False)
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == stamps
    assert prepare.data_hash(manifest) == prepare.data_hash(json.loads((directory / "manifest.json").read_text()))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "train.bin").write_bytes(b"tampered"), "was altered"),
    (lambda d: (d / "val.bin").unlink(), "val.bin is missing"),
    (lambda d: (d / "manifest.json").unlink(), "has no manifest.json"),
])
def test_damaged_cache_fails_loudly_with_the_fix(corpus, tmp_path, damage, message):
    directory = prepare.build(corpus, tmp_path).dir
    damage(directory)
    with pytest.raises(prepare.DataError, match=message) as err:
        prepare.build(corpus, tmp_path)
    assert "just prepare" in str(err.value) and str(directory) in str(err.value)


def test_bad_sources(tmp_path):
    with pytest.raises(prepare.DataError, match="is not a directory"):
        prepare.build(tmp_path / "missing", tmp_path / "cache")
    few = tmp_path / "few"
    few.mkdir()
    (few / "one.txt").write_text("hello\n")
    with pytest.raises(prepare.DataError, match="empty split"):
        prepare.build(few, tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("few-*")), "a failed build left a cache behind"


def test_binary_files_are_skipped_and_counted(corpus, tmp_path):
    source = tmp_path / "mixed"
    source.mkdir()
    for p in sorted(corpus.rglob("*.py"))[:200]:
        (source / p.name).write_bytes(p.read_bytes())
    (source / "blob.bin").write_bytes(b"\x00\x01binary")
    (source / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    directory, manifest, _ = prepare.build(source, tmp_path / "cache")
    assert manifest["skipped_binary"] == 2 and sum(manifest["files"].values()) == 200
    assert b"\x00\x01binary" not in b"".join((directory / f"{s}.bin").read_bytes() for s in prepare.SPLITS)


def test_cli_builds_then_verifies_and_concurrent_builds_agree(corpus, tmp_path):
    cmd = [sys.executable, str(REPO / "prepare.py"), "--source", str(corpus), "--cache-root", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert sum("built" in o for o in outputs) == 1 and sum("verified" in o for o in outputs) == 2
    assert len(list(tmp_path.glob("corpus*"))) == 1 and not list(tmp_path.glob(".build-*"))
    bad = subprocess.run([*cmd[:2], "--source", str(tmp_path / "nope"), "--cache-root", str(tmp_path)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "is not a directory" in bad.stderr
