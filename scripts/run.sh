#!/usr/bin/env bash
# The main job: set up, then serve the shipped default model over HTTP (BentoML).
#   bash scripts/run.sh [onepass serve options]     e.g. --port 8080, --workers 2, --backend torch
# Open http://localhost:3000/ for the web page; docs/serving.md has the API. Ctrl+C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ".[video]"   # with the video extra: the server also takes short video uploads (docs/video.md)
venv="${ONEPASS_VENV:-.venv}"
"$venv/bin/onepass" info
exec "$venv/bin/onepass" serve default "$@"
