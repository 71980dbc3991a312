"""Tests for lab/guard/shellscan.py: which paths a shell command may write, and which hook bypasses it attempts.

What they test, as pure function calls (no shell is run, nothing is written):
  * each write construct (redirections, tee, sed -i, cp, mv, rm, ln, chmod, dd, patch, editors, git checkout/
    restore/rm/mv/stash/reset/clean/apply, interpreters' -c code and heredocs) reports exactly its targets;
  * each bypass (--no-verify, git commit -n, core.hooksPath, META_MODE/LAB_PYTHON/GIT_DIR assignments, ...);
  * nesting: bash -c, eval, $(...), backticks, subshells, wrappers (sudo, env, nohup, timeout, xargs, find -exec);
  * ordinary research-loop commands report nothing (or only the harmless targets listed);
  * unbalanced quotes are "unparseable"; mentioned_paths finds paths inside -c code;
  * scanning 1,000 typical commands takes under 1 s of CPU time (a loose sanity bound, not a benchmark).

Cost: well under a second; no GPU, no network, no git; fast set.

Run:  just test tests/unit/test_shellscan.py
"""

from __future__ import annotations

import time

import pytest

from lab.guard import shellscan
from lab.guard.shellscan import Finding, mentioned_paths, scan

W, B = "write", "bypass"

CASES = [
    # ---- redirections
    ("echo hi > out.txt", [(W, "out.txt")]),
    ("echo hi >> log.txt", [(W, "log.txt")]),
    ("echo hi >| f", [(W, "f")]),
    ("make &> build.log", [(W, "build.log")]),
    ("make &>> build.log", [(W, "build.log")]),
    ("cmd 2> err.log", [(W, "err.log")]),
    ("cmd 2>>err.log", [(W, "err.log")]),
    ("echo x >file", [(W, "file")]),
    ("echo a>b", [(W, "b")]),
    ("exec 3<> sock.txt", [(W, "sock.txt")]),
    ("cmd >&out.log", [(W, "out.log")]),
    ("cmd 2>&1 | tee -a run.log", [(W, "run.log")]),
    ("cmd >&2", []),
    ("sort < in.txt", []),
    ("cmd > /dev/null 2>&1", []),
    ("cat > notes.md <<'EOF'\nhello > world\nrm eval.py\nEOF", [(W, "notes.md")]),
    ("cat <<EOF\n> not a redirect\nEOF", []),
    ("diff <(sort a) <(sort b) > d.txt", [(W, "d.txt")]),
    ("echo $((3 > 2))", []),
    # ---- write commands
    ("tee out.txt", [(W, "out.txt")]),
    ("tee -a a.log b.log", [(W, "a.log"), (W, "b.log")]),
    ("echo hi | tee /dev/null", []),
    ("sed -i s/a/b/ eval.py", [(W, "eval.py")]),
    ("sed -i.bak -e s/a/b/ -e s/c/d/ x.py y.py", [(W, "x.py"), (W, "y.py")]),
    ("sed --in-place 's/a/b/' program.md", [(W, "program.md")]),
    ("sed -i '' s/a/b/ f.py", [(W, "f.py")]),
    ("sed -ni 's/x/y/p' g.py", [(W, "g.py")]),
    ("sed -f script.sed -i h.py", [(W, "h.py")]),
    ("sed -e s/a/b/ eval.py", []),
    ("perl -pi -e 's/a/b/' eval.py", [(W, "eval.py")]),
    ("perl -i.bak -pe 's/a/b/' a.txt", [(W, "a.txt")]),
    ("perl -ne 'print' eval.py", []),
    ("cp a.py b.py", [(W, "b.py")]),
    ("cp -r src/ dst/", [(W, "dst/")]),
    ("cp -t dest a b", [(W, "dest")]),
    ("install -m 644 a.cfg /etc/a.cfg", [(W, "/etc/a.cfg")]),
    ("rsync -av src/ backup/", [(W, "backup/")]),
    ("rsync -a --remove-source-files a/ b/", [(W, "a/"), (W, "b/")]),
    ("mv old.py new.py", [(W, "old.py"), (W, "new.py")]),
    ("mv -t dir a b", [(W, "dir"), (W, "a"), (W, "b")]),
    ("rm -rf .git", [(W, ".git")]),
    ("rm -- -weird", [(W, "-weird")]),
    ("rmdir d1 d2", [(W, "d1"), (W, "d2")]),
    ("unlink eval.py", [(W, "eval.py")]),
    ("shred -n 3 -u secret", [(W, "secret")]),
    ("ln -sf /tmp/x eval.py", [(W, "/tmp/x"), (W, "eval.py")]),
    ("chmod +x run.sh", [(W, "run.sh")]),
    ("chmod -R 755 dir", [(W, "dir")]),
    ("chmod -w eval.py", [(W, "eval.py")]),
    ("chown user:grp results.tsv", [(W, "results.tsv")]),
    ("chgrp staff f", [(W, "f")]),
    ("touch a b", [(W, "a"), (W, "b")]),
    ("touch -d yesterday -r ref.txt stamp.txt", [(W, "stamp.txt")]),
    ("truncate -s 0 results.tsv", [(W, "results.tsv")]),
    ("mkdir -p 1_ideas/new", [(W, "1_ideas/new")]),
    ("dd if=/dev/zero of=eval.py bs=1 count=0", [(W, "eval.py")]),
    ("dd if=a of=/dev/null", []),
    ("patch -p1 < fix.diff", [(W, "?")]),
    ("patch eval.py fix.diff", [(W, "eval.py")]),
    ("vim eval.py", [(W, "eval.py")]),
    ("emacs -nw +10 program.md", [(W, "program.md")]),
    ("ed -s f.txt", [(W, "f.txt")]),
    ("nano", [(W, "?")]),
    ("sort -o sorted.txt in.txt", [(W, "sorted.txt")]),
    ("awk '{print > \"out.tsv\"}' results.tsv", [(W, "out.tsv")]),
    ("gawk -i inplace '{print}' eval.py", [(W, "eval.py")]),
    ("awk 'BEGIN { system(\"rm x\") }'", [(W, "?")]),
    ("awk -F'\\t' '$9 > 1.2 {print $1}' results.tsv", []),
    ("curl -sSLo data.bin https://x/y", [(W, "data.bin")]),
    ("tar xzf a.tgz -C data", [(W, "?"), (W, "data")]),
    ("gzip big.log", [(W, "big.log")]),
    ("gzip -c big.log > big.log.gz", [(W, "big.log.gz")]),
    # ---- git writes
    ("git checkout -- eval.py", [(W, "eval.py")]),
    ("git checkout main -- eval.py program.md", [(W, "eval.py"), (W, "program.md")]),
    ("git checkout HEAD~1 eval.py", [(W, "eval.py")]),
    ("git checkout -b exp/new main", []),
    ("git -C 5_worktrees/foo checkout -- eval.py", [(W, "5_worktrees/foo/eval.py")]),
    ("git restore eval.py", [(W, "eval.py")]),
    ("git restore -s main -- results.tsv", [(W, "results.tsv")]),
    ("git restore --staged eval.py", []),
    ("git rm eval.py", [(W, "eval.py")]),
    ("git rm --cached big.bin", []),
    ("git mv a.py b.py", [(W, "a.py"), (W, "b.py")]),
    ("git stash", [(W, ".")]),
    ("git stash pop", [(W, ".")]),
    ("git stash list", []),
    ("git reset --hard HEAD~1", [(W, ".")]),
    ("git reset HEAD eval.py", []),
    ("git clean -fdx", [(W, ".")]),
    ("git clean -n", []),
    ("git apply fix.patch", [(W, "?")]),
    ("git apply --check fix.patch", []),
    ("git am < mbox", [(W, "?")]),
    # ---- interpreters
    ("python -c \"open('eval.py','w').write('x')\"", [(W, "eval.py")]),
    ("python3 -c 'import pathlib; pathlib.Path(\"results.tsv\").write_text(\"\")'", [(W, "results.tsv")]),
    (".venv/bin/python -c \"import shutil; shutil.rmtree('.git')\"", [(W, ".git")]),
    ("python3.11 -c \"import os; os.remove(x)\"", [(W, "?")]),
    ("python -c \"open(os.path.join('a', 'b.txt'), 'w')\"", [(W, "b.txt")]),
    ("python -c \"import os; os.system('rm eval.py')\"", [(W, "eval.py")]),
    ("python -c \"import torch; torch.save(m, 'model.pt')\"", [(W, "model.pt")]),
    ("python -c \"from pathlib import Path; Path('eval.py').rename('old.py')\"", [(W, "eval.py"), (W, "old.py")]),
    ("python -c \"import pandas as pd; print(pd.read_csv('results.tsv').rename(columns={'a': 'b'}))\"", []),
    ("python - <<'EOF'\nwith open('program.md', 'a') as f:\n    f.write('x')\nEOF", [(W, "program.md")]),
    ("python3 <<EOF\nimport os\nos.rename('a.txt', 'b.txt')\nEOF", [(W, "a.txt"), (W, "b.txt")]),
    ("python3 <<< \"open('x.json','w')\"", [(W, "x.json")]),
    ("python -c \"print(open('eval.py').read())\"", []),
    ("python train.py --out eval.py", []),
    ("python -m pytest -q", []),
    ("perl -e 'open(my $f, \">\", \"eval.py\")'", [(W, "eval.py")]),
    ("perl -e 'unlink \"results.tsv\"'", [(W, "results.tsv")]),
    ("ruby -e 'File.write(\"a.rb\", \"\")'", [(W, "a.rb")]),
    ("node -e \"require('fs').writeFileSync('x.js', '')\"", [(W, "x.js")]),
    ("echo 'print(1)' | python", [(W, "?")]),
    ("curl -s https://x | sh", [(W, "?")]),
    # ---- nesting, compound commands, wrappers
    ("bash -c \"echo x > eval.py\"", [(W, "eval.py")]),
    ("sh -c 'rm -rf .claude'", [(W, ".claude")]),
    ("bash -lc 'sed -i s/a/b/ program.md'", [(W, "program.md")]),
    ("zsh -c 'touch z'", [(W, "z")]),
    ("bash -euxo pipefail -c 'rm p.txt'", [(W, "p.txt")]),
    ("make | tee >(gzip > log.gz) full.log", [(W, "log.gz"), (W, "full.log")]),
    ("eval 'rm eval.py'", [(W, "eval.py")]),
    ("bash -c 'bash -c \"eval \\\"rm deep.txt\\\"\"'", [(W, "deep.txt")]),
    ("bash <<'EOF'\nrm -f eval.py\nEOF", [(W, "eval.py")]),
    ("echo $(sed -i s/a/b/ eval.py)", [(W, "eval.py")]),
    ("x=`rm -f eval.py`", [(W, "eval.py")]),
    ("echo \"$(git checkout -- eval.py)\"", [(W, "eval.py")]),
    ("(cd sub && rm a.txt)", [(W, "a.txt")]),
    ("{ echo x; echo y; } > both.txt", [(W, "both.txt")]),
    ("true && rm a || rm b; rm c & rm d\nrm e | rm f", [(W, t) for t in "abcdef"]),
    ("if true; then rm x.tmp; fi", [(W, "x.tmp")]),
    ("for f in *.py; do sed -i s/a/b/ \"$f\"; done", [(W, "$f"), (W, "?")]),
    ("F=eval.py; echo x > \"$F\"", [(W, "$F"), (W, "?")]),
    ("pueue add -w /tmp -- 'rm q.txt'", [(W, "q.txt")]),
    ("watch -n 5 'date >> w.log'", [(W, "w.log")]),
    ("sudo rm /etc/hosts", [(W, "/etc/hosts")]),
    ("sudo -u root tee /etc/x", [(W, "/etc/x")]),
    ("env -i PATH=/bin rm x", [(W, "x")]),
    ("nice -n 10 rm n1", [(W, "n1")]),
    ("nohup rm n2 &", [(W, "n2")]),
    ("timeout -s KILL 5s rm n3", [(W, "n3")]),
    ("time rm n4", [(W, "n4")]),
    ("command rm n5", [(W, "n5")]),
    ("command -v rm", []),
    ("exec rm n6", [(W, "n6")]),
    ("X=1 Y=2 rm n7", [(W, "n7")]),
    ("uv run python -c \"open('u.py','w')\"", [(W, "u.py")]),
    ("$EDITOR notes.md", [(W, "?")]),
    ("find . -name '*.pyc' -delete", [(W, "?"), (W, ".")]),
    ("find src tests -name '*.bak' -exec rm -f {} +", [(W, "?"), (W, "src"), (W, "tests")]),
    ("find . -type f -exec grep -l x {} \\;", []),
    ("find . -name x -fprint list.txt", [(W, "list.txt")]),
    ("ls | xargs rm", [(W, "?")]),
    ("ls | xargs -0 -n 1 sed -i s/a/b/", [(W, "?")]),
    ("ls | xargs -I{} cp {} backup/", [(W, "backup/"), (W, "?")]),
    ("git ls-files | xargs grep TODO", []),
    # ---- bypasses
    ("git commit --no-verify -m x", [(B, "--no-verify")]),
    ("git commit -n -m x", [(B, "-n")]),
    ("git commit -anm x", [(B, "-n")]),
    ("git commit -m x -n", [(B, "-n")]),
    ("git commit --no-veri -m x", [(B, "--no-veri")]),
    ("git push --no-verify", [(B, "--no-verify")]),
    ("git merge --no-verify exp/foo", [(B, "--no-verify")]),
    ("git config alias.ci 'commit --no-verify'", [(B, "--no-verify")]),
    ("F=--no-verify; git commit $F -m x", [(B, "$F")]),
    ("git $CMD -m x", [(B, "$CMD")]),
    ('git commit -m "$(cat msg.txt)" -F "$TMP"', []),  # computed option values are no flags
    ("git config core.hooksPath /dev/null", [(B, "core.hooksPath")]),
    ("git -c core.hooksPath=/tmp/h commit -m x", [(B, "core.hooksPath=/tmp/h")]),
    ("git config --worktree core.hooksPath x", [(B, "core.hooksPath"), (B, "--worktree")]),
    ("git config extensions.worktreeConfig true", [(B, "extensions.worktreeConfig")]),
    ("git config include.path ../x.cfg", [(B, "include.path")]),
    ("env GIT_CONFIG_PARAMETERS=x git commit", [(B, "GIT_CONFIG_PARAMETERS=x")]),
    ("GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.hooksPath GIT_CONFIG_VALUE_0=/x git commit",
     [(B, "GIT_CONFIG_COUNT=1"), (B, "GIT_CONFIG_KEY_0=core.hooksPath"), (B, "GIT_CONFIG_KEY_0=core.hooksPath"),
      (B, "GIT_CONFIG_VALUE_0=/x")]),  # the key is reported twice: a GIT_CONFIG_* assignment, and core.hooksPath
    ("META_MODE=1 git commit -m x", [(B, "META_MODE=1")]),
    ("export META_MODE=1", [(B, "META_MODE=1")]),
    ("export META_MODE", [(B, "META_MODE")]),
    ("env META_MODE=1 just eval", [(B, "META_MODE=1")]),
    ("sudo -E META_MODE=1 git commit", [(B, "META_MODE=1")]),
    ("declare -x META_MODE", [(B, "META_MODE")]),
    ("read META_MODE <<< 1", [(B, "META_MODE")]),
    ("printf -v META_MODE 1", [(B, "META_MODE")]),
    ("bash -c 'META_MODE=1 git commit -m x'", [(B, "META_MODE=1")]),
    ("unset META_MODE", []),
    ("LAB_PYTHON=/tmp/py just smoke", [(B, "LAB_PYTHON=/tmp/py")]),
    ("GIT_DIR=/tmp/g git status", [(B, "GIT_DIR=/tmp/g")]),
    ("GIT_WORK_TREE=/ git add -A", [(B, "GIT_WORK_TREE=/")]),
    ("GIT_INDEX_FILE=/tmp/i git commit -m x", [(B, "GIT_INDEX_FILE=/tmp/i")]),
    ("git --git-dir=/tmp/g status", [(B, "--git-dir=/tmp/g")]),
    ("git update-index --assume-unchanged eval.py", [(B, "--assume-unchanged")]),
    ("git update-index --skip-worktree results.tsv", [(B, "--skip-worktree")]),
    ("echo '{\"disableAllHooks\": true}' > .claude/settings.local.json",
     [(W, ".claude/settings.local.json"), (B, "disableAllHooks")]),
    ("python -c \"import subprocess; subprocess.run(['git', 'commit', '--no-verify'])\"",
     [(B, "--no-verify"), (W, "?")]),
    ("python -c \"import os; os.environ['META_MODE'] = '1'\"", [(B, "META_MODE")]),
    ("python -c \"import os; print(os.environ.get('META_MODE'))\"", []),
    ("git commit -m '--no-verify'", []),  # the message, not a flag
    ("git commit -m 'mention core.hooksPath'", []),
    ("git log -n 5 --no-walk", []),
    # ---- ordinary research-loop commands: no false alarms
    ("just smoke", []),
    ("just eval --seed 1 --budget-s 300", []),
    ("cd 5_worktrees/foo && just smoke", []),
    ("git worktree add 5_worktrees/foo -b exp/foo main", []),
    ('git add train.py && git commit -m "foo: wider mlp"', []),
    ('git commit -m "use -n carefully; no-verify is not used"', []),
    ("git status", []),
    ("git diff main -- train.py", []),
    ("git log -n 5", []),
    ("cat eval.py | head -50", []),
    ("grep -n budget eval.py", []),
    ('python -c "print(1+1)"', []),
    ("uv run lab ledger show -n 20", []),
    ("ls -la 1_ideas/", []),
    ("nohup just eval --seed 0 > run_seed0.log 2>&1 &", [(W, "run_seed0.log")]),
    ("cp 1_ideas/_TEMPLATE.md 1_ideas/2026-11-23_foo.md", [(W, "1_ideas/2026-11-23_foo.md")]),
    ("tail -n 13 run.log", []),
    ("date '+%Y-%m-%d %H:%M'", []),
    ('echo "META_MODE is off"', []),
    ("sed -n 1,40p program.md", []),
    ("grep -rn core.hooksPath README.md", []),
    ("python -c \"import polars as pl; print(pl.read_csv('results.tsv', separator='\\t').tail(5))\"", []),
]


@pytest.mark.parametrize("command,expected", CASES, ids=[c for c, _ in CASES])
def test_scan(command: str, expected: list[tuple[str, str]]) -> None:
    assert sorted((f.kind, f.target) for f in scan(command)) == sorted(expected)


@pytest.mark.parametrize("command,why", [
    ("echo x > eval.py", "output redirect `>`"),
    ("cmd 2>err.log", "output redirect `2>`"),
    ("sed -i s/a/b/ eval.py", "`sed -i`"),
    ("cp a b", "`cp` destination"),
    ("git checkout -- eval.py", "`git checkout --`"),
    ("python -c \"open('eval.py', 'w')\"", "python -c writes a file"),
    ("python - <<'EOF'\nopen('eval.py', 'w')\nEOF", "python heredoc writes a file"),
    ("git commit --no-verify", "`--no-verify` skips the git hooks"),
    ("git commit -n", "`git commit -n` skips the git hooks"),
    ("ls | xargs rm", "`xargs rm` gets its operands from stdin"),
    ("find . -delete", "`find -delete`"),
    ("git reset --hard", "`git reset --hard`"),
])
def test_why_names_the_construct(command: str, why: str) -> None:
    assert why in [f.why for f in scan(command)]


@pytest.mark.parametrize("command", ['echo "unterminated', "echo 'x", "echo $(ls", "echo `ls", "echo ${x",
                                     "echo hi >", "bash -c 'echo \"x'"])
def test_unparseable_fails_closed(command: str) -> None:
    assert scan(command) == [Finding("unparseable", command, "could not parse the command")]


def test_an_internal_error_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shellscan, "_command", lambda *args: 1 / 0)
    assert scan("rm x") == [Finding("unparseable", "rm x", "could not parse the command")]


@pytest.mark.parametrize("command,paths", [
    ("xargs rm < list.txt", ["list.txt"]),
    ("python -c \"import os; os.remove('eval.py')\"", ["eval.py"]),
    ("bash -c \"python -c \\\"open('results.tsv', 'a')\\\"\"", ["results.tsv"]),
    ("echo 'unbalanced > program.md", ["program.md"]),
    ("cat <<EOF | python\nopen('.claude/settings.json', 'w')\nEOF", [".claude/settings.json"]),
    ("find . -name '*.pyc' -delete", [".", "*.pyc"]),
    ("dd of=eval.py", ["eval.py"]),
    ("git commit -m 'wider mlp'", []),
])
def test_mentioned_paths(command: str, paths: list[str]) -> None:
    found = mentioned_paths(command)
    assert set(paths) <= set(found)
    assert not {"git", "commit", "-m", "wider", "mlp", "rm", "python"} & set(found)


def test_scanning_a_thousand_commands_is_fast() -> None:
    typical = [c for c, _ in CASES[-25:]] + ["git add -A && git commit -m 'x' && git push", "just eval --seed 2"]
    commands = (typical * (1000 // len(typical) + 1))[:1000]
    start = time.process_time()  # this process's CPU time: other processes' load does not count
    for command in commands:
        scan(command)
    assert time.process_time() - start < 1.0
