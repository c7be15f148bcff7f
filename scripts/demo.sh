#!/usr/bin/env bash
# The demo: validate, plan and render manifests/demo.yaml end to end with the preview renderer (CPU, ffmpeg),
# then show the batch's status. Run it twice: the second run finds everything done and renders nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
swift build -c release --product avatar-batch 2>&1 | tail -1
bin=.build/release/avatar-batch
set -x
$bin validate manifests/demo.yaml
$bin plan manifests/demo.yaml
$bin run manifests/demo.yaml
$bin status manifests/demo.yaml --all
set +x
echo "videos: $(ls demo-out/*.mp4 | tr '\n' ' ')"
