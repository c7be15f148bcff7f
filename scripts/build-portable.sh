#!/usr/bin/env bash
# Builds a release avatar-batch that runs on Linux x86_64 hosts without a Swift toolchain (glibc 2.35+):
# the Swift runtime is linked statically, and so is SQLite (a folder holding only a link to libsqlite3.a,
# passed to the linker, makes -lsqlite3 pick the archive). Packs it with the renderers/ directory:
#   dist/avatar-batch-linux-x86_64.tar.xz  ->  bin/avatar-batch, share/avatar-batch/renderers/
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
archive=$( (ls /usr/lib/*/libsqlite3.a /usr/lib/libsqlite3.a 2>/dev/null || true) | head -1)
[ -n "$archive" ] || { echo "libsqlite3.a not found (apt-get install libsqlite3-dev)" >&2; exit 1; }
static_dir=$(mktemp -d)
trap 'rm -rf "$static_dir"' EXIT
ln -s "$archive" "$static_dir/libsqlite3.a"
swift build -c release --product avatar-batch --static-swift-stdlib --scratch-path .build-portable \
  -Xlinker -L"$static_dir" 2>&1 | grep -E "error|warning: |Compiling|Build complete" | tail -3
bin=.build-portable/release/avatar-batch
if ldd "$bin" | grep -q -E "libswift|libsqlite"; then
  echo "the binary still links Swift or SQLite dynamically:" >&2; ldd "$bin" >&2; exit 1
fi
stage=$(mktemp -d)
mkdir -p "$stage/bin" "$stage/share/avatar-batch"
cp "$bin" "$stage/bin/avatar-batch"
strip "$stage/bin/avatar-batch" 2>/dev/null || true
cp -r renderers "$stage/share/avatar-batch/renderers"
find "$stage" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p dist
tar -C "$stage" -cf - bin share | xz -T0 -6 > dist/avatar-batch-linux-x86_64.tar.xz
rm -rf "$stage"
echo "dist/avatar-batch-linux-x86_64.tar.xz ($(du -h dist/avatar-batch-linux-x86_64.tar.xz | cut -f1)); needs glibc $(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)"
