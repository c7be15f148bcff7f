#!/usr/bin/env bash
# Installs avatar-batch: a release build to PREFIX/bin/avatar-batch (default PREFIX: /usr/local as root, else
# ~/.local), and the shipped renderers to PREFIX/share/avatar-batch/renderers (found beside the binary; the binary
# also carries them built in, so copying it alone works too). Usage: bash scripts/install.sh [--prefix DIR]
# Uninstall: rm PREFIX/bin/avatar-batch; rm -r PREFIX/share/avatar-batch ~/.cache/avatar-batch
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (use --prefix DIR)" >&2; exit 2 ;;
  esac
done
[ -n "$prefix" ] || { if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix=$HOME/.local; fi; }
bash scripts/deps.sh
swift build -c release --product avatar-batch 2>&1 | { grep -E "error|complete" || true; } | tail -3
install -d "$prefix/bin" "$prefix/share/avatar-batch"
install -m 0755 .build/release/avatar-batch "$prefix/bin/avatar-batch"
rm -rf "$prefix/share/avatar-batch/renderers"
cp -r renderers "$prefix/share/avatar-batch/renderers"
find "$prefix/share/avatar-batch/renderers" -name __pycache__ -prune -exec rm -rf {} +
echo "installed $prefix/bin/avatar-batch ($("$prefix/bin/avatar-batch" --version)) and $prefix/share/avatar-batch/renderers"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on PATH" ;; esac
