#!/usr/bin/env bash
# One entry point for set-up, building, running and testing.
#
#   ./Tools/dev.sh run [args]    install what is missing, build (release), run the main job:
#                                the R2I-vs-DreamerV3 speed benchmark (quick; --full for the sweep)
#   ./Tools/dev.sh test          install what is missing, build and run every test (release)
#   ./Tools/dev.sh bench ARGS    install, build, run the benchmark harness (r2i-bench ARGS)
#   ./Tools/dev.sh deps          only install the Debian packages that are missing
#
# Debian packages needed: libopenblas-dev, libpng-dev, zlib1g-dev, pkg-config, and Open MPI
# (openmpi-bin, libopenmpi-dev) for data-parallel training with mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."

ensure_deps() {
  local missing=()
  for pkg in libopenblas-dev libpng-dev zlib1g-dev pkg-config openmpi-bin libopenmpi-dev; do
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

cmd="${1:-run}"
shift || true
case "$cmd" in
  deps)
    ensure_deps
    ;;
  run)
    ensure_deps
    echo "==> Building (release)"
    swift build -c release --product r2i-bench
    echo "==> Running the main job: r2i-bench speed (world-model update time, R2I vs DreamerV3)"
    .build/release/r2i-bench speed "$@"
    ;;
  bench)
    ensure_deps
    swift build -c release --product r2i-bench
    .build/release/r2i-bench "$@"
    ;;
  test)
    ensure_deps
    echo "==> Building and running all tests (release)"
    swift test -c release "$@"
    ;;
  *)
    echo "usage: ./Tools/dev.sh run|test|bench|deps [args]" >&2
    exit 2
    ;;
esac
