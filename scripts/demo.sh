#!/usr/bin/env bash
# The main job on the built-in default data, the robot's whole chain in a quick form:
#   1. mke-train  — RGB teacher → pseudo labels on unlabeled RGB-D → UM and MM students (rendered rooms)
#   2. mke-export — teacher and fused student to ONNX FP32 and INT8 (TensorRT Q/DQ + ONNX Runtime CPU)
#   3. mke-live   — the exported student on the built-in RealSense recording, as on the robot
# `bash scripts/demo.sh [extra mke-train key=value overrides]`; the full study is `mke-train --task rgbd`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"

RUN=runs/rgbd-quick
EXPORT=exports/rgbd-quick
# the quick form, for 10 minutes on two AVX2 cores with set-up: one seed, the teacher and the MM student, the
# `tiny` encoder, a 15-epoch teacher (the full study: mke-train --task rgbd; docs/rgbd.md, "The quick form")
QUICK=(seeds=1 workers=1 "methods=[UM teacher, MM student]" model.encoder=tiny teacher.optim.epochs=15)

say "1/3 training: mke-train --task rgbd --name rgbd-quick ${QUICK[*]} $*"
mke-train --task rgbd --name rgbd-quick "${QUICK[@]}" "$@"

say "2/3 exporting: mke-export $RUN --int8"
mke-export "$RUN" --int8

REPLAY=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["replay"])' "$RUN/metrics.json")
say "3/3 live replay: mke-live $EXPORT/student.onnx --input $REPLAY --fast --headless (annotated video + predictions)"
mke-live "$EXPORT/student.onnx" --input "$REPLAY" --fast --headless \
    --save "$EXPORT/live.mp4" --jsonl "$EXPORT/live_predictions.jsonl" --stats-json "$EXPORT/live_stats.json"

say "done: $RUN/report.md (training), $EXPORT/export_report.md (export), $EXPORT/live.mp4 and" \
    "$EXPORT/live_predictions.jsonl (live replay)"
