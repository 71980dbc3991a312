#!/usr/bin/env bash
# What bench/gpu.py needs on a bare GPU machine that has python3 with torch but no uv, pueue, just or bwrap,
# and no network (the device tool's). Two steps:
#   here, in the root checkout:   bash bench/gpu_carry.sh prepare   -> .device/ (wheels, binaries; git-ignored)
#   there, carrying .device:      bash bench/gpu_carry.sh install && PATH="$PWD/.device/bin:$PATH" python3 bench/gpu.py
# install puts the wheels into that python3's own environment, which the sandbox binds read-only (PYTHONPATH is
# not passed into it).
set -euo pipefail
cd "$(dirname "$0")/.."
carry=.device
case "${1:-}" in
prepare)
  grep -qx "/$carry/" .git/info/exclude 2>/dev/null || echo "/$carry/" >>.git/info/exclude
  rm -rf "$carry" && mkdir -p "$carry/whl" "$carry/bin" "$carry/lib"
  # the packages eval.py, train.py and lab's queue import that a torch image lacks, at uv.lock's versions
  pins=$(for p in tyro docstring-parser typeguard loguru rust-just; do
    v=$(grep -A1 "^name = \"$p\"$" uv.lock | sed -n 's/^version = "\(.*\)"/\1/p')
    [ -n "$v" ] || { echo "gpu_carry.sh: $p is not in uv.lock" >&2; exit 1; }
    echo "$p==$v"
  done)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$carry/whl" $pins
  for tool in pueue pueued bwrap; do cp "$(command -v "$tool")" "$carry/bin/"; done
  # bwrap's shared libraries, in case the image lacks them (found through LD_LIBRARY_PATH there)
  ldd "$(command -v bwrap)" | awk '/=> \//{print $3}' | grep -E 'libselinux|libcap|libpcre2' | xargs -r cp -L -t "$carry/lib"
  du -sh "$carry"
  ;;
install)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "$carry"/whl/*.whl
  for lib in "$carry"/lib/*; do
    ldconfig -p | grep -q "$(basename "$lib")" || { mkdir -p /usr/local/lib/lab-carry && cp "$lib" /usr/local/lib/lab-carry/; }
  done
  [ -d /usr/local/lib/lab-carry ] && { echo /usr/local/lib/lab-carry >/etc/ld.so.conf.d/lab-carry.conf; ldconfig; }
  # just runs recipes with python from LAB_PYTHON; bench/gpu.py sets it to the python3 that runs it
  echo "installed: $(python3 -c 'import tyro, loguru; print("tyro", tyro.__version__, "loguru", loguru.__version__)'), just beside $(python3 -c 'import sys; print(sys.executable)')"
  ;;
*)
  echo "usage: bash bench/gpu_carry.sh prepare|install (prepare here; install on the GPU machine)" >&2
  exit 2
  ;;
esac
