# Sourced by the GPU scripts, from the repository root with .carry/la/ffbin.tar.xz carried (the GPU host has no
# ffmpeg): unpacks the static ffmpeg and ffprobe into /tmp/ffbin and puts them first on PATH.
mkdir -p /tmp/ffbin && tar -xJf "$PWD/.carry/la/ffbin.tar.xz" -C /tmp/ffbin && chmod +x /tmp/ffbin/* || exit 1
export PATH=/tmp/ffbin:$PATH PYTHONUNBUFFERED=1
