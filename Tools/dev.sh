#!/usr/bin/env bash
# One entry point for set-up, building, running and testing.
#
#   ./Tools/dev.sh run [args]    install what is missing, build (release), run the main job:
#                                the speed benchmark, R2I vs DreamerV3 vs Transformer (quick; --full for the sweep)
#   ./Tools/dev.sh test          install what is missing, build and run every test (release)
#   ./Tools/dev.sh bench ARGS    install, build, run the benchmark harness (r2i-bench ARGS)
#   ./Tools/dev.sh deps          only install the Debian packages that are missing
#   ./Tools/dev.sh python        only create or update .venv, the Python environment of the
#                                environment bridge (gym:, dmc:, atari:, real-...), pinned packages
#
# Debian packages needed: libopenblas-dev, libpng-dev, zlib1g-dev, pkg-config, Open MPI
# (openmpi-bin, libopenmpi-dev) for data-parallel training with mpirun, and for the Python
# environments python3, python3-venv and libosmesa6 (MuJoCo's software rendering).
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_deps() {
  local missing=()
  for pkg in libopenblas-dev libpng-dev zlib1g-dev pkg-config openmpi-bin libopenmpi-dev python3 python3-venv libosmesa6; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return
  fi
  echo "==> Installing missing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y "${missing[@]}"; then
    echo "==> Package lists look stale; running apt-get update and retrying"
    $sudo apt-get update
    $sudo apt-get install -y "${missing[@]}"
  fi
}

# .venv with exactly the packages of Python/requirements.txt (every dependency pinned, so they
# install without resolving); redone when that file changes.
ensure_python() {
  local stamp=.venv/r2i-requirements.txt
  if [ -x .venv/bin/python ] && cmp -s Python/requirements.txt "$stamp"; then
    return
  fi
  local python=python3
  command -v "$python" >/dev/null || { echo "python3 is missing: install it (apt-get install python3 python3-venv)" >&2; exit 1; }
  echo "==> Creating .venv for the Python environments (pinned packages from Python/requirements.txt, about 250 MB from PyPI)"
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  .venv/bin/python -m pip install --disable-pip-version-check --quiet --no-deps -r Python/requirements.txt
  cp Python/requirements.txt "$stamp"
}

cmd="${1:-run}"
shift || true
case "$cmd" in
  deps)
    ensure_deps
    ;;
  python)
    ensure_deps
    ensure_python
    ;;
  run)
    ensure_deps
    ensure_python
    echo "==> Building (release)"
    swift build -c release --product r2i-bench
    echo "==> Running the main job: r2i-bench speed (world-model update time, R2I vs DreamerV3 vs Transformer)"
    .build/release/r2i-bench speed "$@"
    ;;
  bench)
    ensure_deps
    ensure_python
    swift build -c release --product r2i-bench
    .build/release/r2i-bench "$@"
    ;;
  test)
    ensure_deps
    ensure_python
    echo "==> Testing the Python side of the environment bridge (Python/test_r2i_bridge.py)"
    .venv/bin/python -m unittest discover -s Python -p 'test_*.py'
    echo "==> Building and running all tests (release)"
    swift test -c release "$@"
    ;;
  *)
    echo "usage: ./Tools/dev.sh run|test|bench|deps|python [args]" >&2
    exit 2
    ;;
esac
