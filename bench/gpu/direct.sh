# Sourced by the GPU scripts that run synthetic-dit directly, without avatar-batch (busy-probe.sh, pair-start.sh), from
# the repository root with .carry/la/ffbin.tar.xz carried, after setting W (a scratch folder, emptied here). Puts the
# static ffmpeg first on PATH, writes $W/audio.wav (600 s of tone: longer than any probe) and sets repo and dit (the
# renderer's script).
repo=$PWD
. bench/gpu/ffmpeg.sh
rm -rf "$W"; mkdir -p "$W"
ffmpeg -nostdin -loglevel error -y -f lavfi -i "sine=frequency=220:duration=600" -ac 1 -ar 16000 "$W/audio.wav" || exit 1
dit=$repo/renderers/synthetic-dit/synthetic_dit.py
