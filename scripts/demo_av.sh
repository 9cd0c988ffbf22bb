#!/usr/bin/env bash
# The camera + microphone chain on the built-in audio-visual clips, in a quick form:
#   1. mke-train  — an image teacher → pseudo labels on unlabeled image + audio clips → UM and MM students
#   2. mke-export — teacher and two-input student (rgb clip, log-mel) to ONNX FP32 and INT8
#   3. mke-live   — the exported student on the built-in replay pair (video + WAV), scored against its
#                   truth: the live accuracy must agree with training's evaluation of the same clips
# `bash scripts/demo_av.sh [extra mke-train key=value overrides]`; the full study is `mke-train --task av`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

RUN=runs/av-quick
EXPORT=exports/av-quick
QUICK=(seeds=1 workers=1 "methods=[UM teacher, UM student, MM student]")

say "1/3 training: mke-train --task av --name av-quick ${QUICK[*]} $*"
mke-train --task av --name av-quick "${QUICK[@]}" "$@"

say "2/3 exporting: mke-export $RUN --int8"
mke-export "$RUN" --int8

REPLAY=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["replay"])' "$RUN/metrics.json")
say "3/3 live replay: mke-live $EXPORT/student.onnx --input ${REPLAY} --audio ${REPLAY%.mp4}.wav --fast --headless --truth ${REPLAY%.mp4}.json"
mke-live "$EXPORT/student.onnx" --input "$REPLAY" --audio "${REPLAY%.mp4}.wav" --fast --headless \
    --truth "${REPLAY%.mp4}.json" --save "$EXPORT/live.mp4" --jsonl "$EXPORT/live_predictions.jsonl" \
    --stats-json "$EXPORT/live_stats.json"

python - "$EXPORT/export_report.json" "$EXPORT/live_stats.json" <<'PY'
import json, sys
export, live = (json.load(open(p)) for p in sys.argv[1:])
trained = next(a["metric"] for a in export["artifacts"]
               if a["model"] == "student" and a["format"] == "onnx" and a["precision"] == "fp32")
truth = live["truth"]
gap = truth["accuracy"] - trained
print(f"[mke-edge] train/serve agreement on the {truth['scored']} replayed test clips: live {truth['accuracy']:.2f} % "
      f"vs mke-train's evaluation {trained:.2f} % ({gap:+.2f} points; must be within 1)")
sys.exit(0 if abs(gap) <= 1.0 and truth["missed"] == 0 else 1)
PY

say "done: $RUN/report.md (training), $EXPORT/export_report.md (export), $EXPORT/live.mp4 and" \
    "$EXPORT/live_predictions.jsonl (live replay)"
