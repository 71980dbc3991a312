# lab — the workspace's front door (FROZEN). `just` lists the recipes.
# In a worktree under 5_worktrees/, every recipe runs the ROOT checkout's eval.py / prepare.py and
# Python environment on the worktree's train.py: the grader never comes from the agent's copy.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

root := `dirname "$(git rev-parse --path-format=absolute --git-common-dir)"`
python := env("LAB_PYTHON", root / ".venv/bin/python")

# list the recipes
default:
    @"{{ just_executable() }}" --justfile "{{ justfile() }}" --list --unsorted

# check the whole path on a tiny model, budget and split, with shape checks on; writes no row
[group('run')]
smoke *ARGS: _ensure-python _setup
    LAB_TYPECHECK=1 "{{ python }}" "{{ root }}/eval.py" --smoke "$@"

# train this checkout's train.py, grade it with main's eval.py, append one row to the root results.tsv
[group('run')]
eval *ARGS: _ensure-python _setup
    "{{ python }}" "{{ root }}/eval.py" "$@"

# build or verify the data cache (--source DIR for another text tree)
[group('data')]
prepare *ARGS: _ensure-python
    "{{ python }}" "{{ root }}/prepare.py" "$@"

# ideas: new SLUG --title …, list, show, critique SLUG [--with CMD], rate SLUG N
[group('loop')]
idea *ARGS: _ensure-python
    "{{ python }}" -m lab.cli idea "$@"

# create 5_worktrees/SLUG on exp/SLUG from main for a critiqued idea
[group('loop')]
start SLUG: _ensure-python _setup
    "{{ python }}" -m lab.cli start "$@"

# list the experiment worktrees (branch, commits ahead, dirty, ledger rows)
[group('loop')]
worktrees: _ensure-python
    "{{ python }}" -m lab.cli worktrees

# remove a worktree with no uncommitted work, keep its branch (--drop: the idea is dropped)
[group('loop')]
finish *ARGS: _ensure-python
    "{{ python }}" -m lab.cli finish "$@"

# add a dated entry on top of the root RESEARCH_JOURNAL.md (body on stdin or --body)
[group('loop')]
journal *ARGS: _ensure-python
    "{{ python }}" -m lab.cli journal "$@"

# write 9_reports/{date}_SLUG.md from the idea and the ledger
[group('loop')]
report SLUG: _ensure-python
    "{{ python }}" -m lab.cli report "$@"

# where the research stands (--json for machines)
[group('loop')]
status *ARGS: _ensure-python
    "{{ python }}" -m lab.cli status "$@"

# the single next step of the loop
[group('loop')]
next *ARGS: _ensure-python
    "{{ python }}" -m lab.cli next "$@"

# what to read at the start of every cycle (at most 4,000 characters)
[group('loop')]
digest: _ensure-python
    "{{ python }}" -m lab.cli digest

# run the agent in cycles until a stop rule fires: --agent claude|codex|CMD --until HH:MM|--hours H (--summary: write it now)
[group('loop')]
overnight *ARGS: _ensure-python _setup
    "{{ python }}" -m lab.cli overnight "$@"

# queue labelled GPU jobs: SLUG --q QUESTION --h EXPECTED [--seeds K] [-- EVAL-ARGS]; `queue status`
[group('queue')]
queue *ARGS: _ensure-python
    "{{ python }}" -m lab.cli queue "$@"

# block until queued jobs finish (default: all unfinished), one line each
[group('queue')]
wait *ARGS: _ensure-python
    "{{ python }}" -m lab.cli wait "$@"

# run the unmodified baseline N more times (--seeds N, default 3): queued if pueue runs, else here
[group('verdict')]
baseline *ARGS: _ensure-python
    "{{ python }}" -m lab.cli baseline "$@"

# the baseline's mean, std and minimum detectable effect (comparable ok rows only)
[group('verdict')]
noise *ARGS: _ensure-python
    "{{ python }}" -m lab.cli noise "$@"

# keep / discard / inconclusive for SLUG against the baseline, with the 95% interval
[group('verdict')]
verdict *ARGS: _ensure-python
    "{{ python }}" -m lab.cli verdict "$@"

# predicted vs observed delta per idea and overall
[group('verdict')]
calibration *ARGS: _ensure-python
    "{{ python }}" -m lab.cli calibration "$@"

# draw every run, the baseline band and the best-so-far frontier into 9_reports/progress.png
[group('verdict')]
plot *ARGS: _ensure-python
    "{{ python }}" -m lab.cli plot "$@"

# (human / META_MODE) merge a kept exp/SLUG into main with its evidence, tag the new baseline
[group('verdict')]
merge SLUG *ARGS: _ensure-python
    "{{ python }}" -m lab.cli merge "$@"

# (human, sudo) protected mode: install the grader as its own user, signed rows, private test split; idempotent
[group('guard')]
protect *ARGS: _ensure-python
    "{{ python }}" -m lab.cli protect "$@"

# (human, sudo) turn protected mode off (the grader's ledger stays unless --purge)
[group('guard')]
unprotect *ARGS: _ensure-python
    "{{ python }}" -m lab.cli unprotect "$@"

# (human, sudo) a slug's held-out test bpb vs val, and the baseline's
[group('guard')]
reveal SLUG: _ensure-python
    "{{ python }}" -m lab.cli reveal "$@"

# git hooks (the guard's pre-commit layer), bubblewrap (root + apt; else says how) and pueue's `lab` group; idempotent
[group('queue')]
setup *ARGS: _ensure-python _setup _bwrap
    "{{ python }}" -m lab.cli setup "$@"

[private]
_bwrap:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v bwrap >/dev/null 2>&1 && exit 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "just setup: installing bubblewrap (a real eval trains in its sandbox)" >&2
        apt-get install -y -qq bubblewrap || { apt-get update -qq && apt-get install -y -qq bubblewrap; }
    else
        echo "just setup: bubblewrap (bwrap) is missing and a real eval refuses to run without it: install it (sudo apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap)" >&2
    fi

[private]
_hooks:
    #!/usr/bin/env bash
    set -euo pipefail
    want="{{ root }}/.githooks"
    for try in 1 2 3 4 5 6 7 8 9 10; do
        [ "$(git config --get core.hooksPath || true)" = "$want" ] && exit 0
        if err=$(git config core.hooksPath "$want" 2>&1); then
            echo "just setup: core.hooksPath -> $want (every checkout of this repository now runs its pre-commit)" >&2
            exit 0
        fi
        sleep 0.2  # another git holds .git/config's lock (two queued evals starting at once): look again
    done
    echo "just setup: could not set core.hooksPath to $want: $err" >&2
    exit 1

# check commits since main and uncommitted frozen files against the rules (layer 3)
[group('guard')]
check *ARGS: _ensure-python
    "{{ python }}" -m lab.cli check "$@"

# run the fast tests, those not marked slow (~5 min on 2 cores; arguments go to pytest)
[group('dev')]
test *ARGS: _ensure-python
    cd "{{ root }}" && "{{ python }}" -m pytest -m "not slow" "$@"

# run every test, the slow ones that train models included (what CI runs; arguments go to pytest)
[group('dev')]
test-all *ARGS: _ensure-python
    cd "{{ root }}" && "{{ python }}" -m pytest "$@"

# the lab CLI (e.g. `just lab ledger show`)
[group('dev')]
lab *ARGS: _ensure-python
    "{{ python }}" -m lab.cli "$@"

[private]
_setup:
    @"{{ just_executable() }}" --justfile "{{ justfile() }}" _hooks

[private]
_ensure-python:
    @test -x "{{ python }}" || { echo "just: no Python environment at {{ python }}: run \`uv sync\` in {{ root }} (or set LAB_PYTHON)" >&2; exit 1; }
