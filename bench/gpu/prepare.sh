#!/usr/bin/env bash
# On the GPU host: unpack the portable avatar-batch and a static ffmpeg/ffprobe carried in .carry/, into /tmp/ab.
# Source it: `. bench/gpu/prepare.sh` (it exports PATH and AVATAR_BATCH_RENDERERS).
set -e
mkdir -p /tmp/ab/bin
tar -C /tmp/ab -xJf .carry/avatar-batch-linux-x86_64.tar.xz
[ -x /tmp/ab/bin/ffmpeg ] || tar -C /tmp/ab/bin -xJf .carry/ffmpeg-static.tar.xz
export PATH=/tmp/ab/bin:$PATH
export AVATAR_BATCH_RENDERERS=$PWD/renderers   # the working tree's profiles, newer than the packed ones
set +e
