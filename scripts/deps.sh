#!/usr/bin/env bash
# Installs what avatar-batch needs on Debian/Ubuntu when it is missing: the SQLite headers GRDB links against,
# ffmpeg/ffprobe (the preview renderer and output checks), python3 (the test renderer), chromium and xmllint
# (the report tests).
set -euo pipefail
need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || need+=(ffmpeg)
command -v python3 >/dev/null 2>&1 || need+=(python3)
[ -f /usr/include/sqlite3.h ] || need+=(libsqlite3-dev)
# The report tests: a real headless browser, and xmllint for the JUnit schema.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v swift >/dev/null 2>&1 || { echo "swift is not on PATH: install Swift 6.3 (swift.org) first" >&2; exit 1; }
