#!/usr/bin/env bash
# GPU checks of issue 19, for a machine with torch and CUDA but neither Ray nor OpenSpiel
# (the lent device image): about 4 minutes on an H200, each step capped by `timeout`.
#   1. early exit on the GPU: staged forward with half the rows exiting at exit 0 against the
#      full forward, batch 32..1024, thesis 15x128 and CPU-default 6x64 nets, fp32 and bf16,
#      NCHW and channels_last; bar: time ratio within 1.25x the FLOPs ratio at batch >= 256;
#      plus bf16's accuracy cost (largest policy/value difference, exit decisions flipped);
#   2. the batching inference core (dpv.inference, in-process client threads) against the
#      bare forward at the batch it gathered; bar: >= 50% of that ceiling; the fixed-exit
#      forward compiled for padded batch shapes (torch.compile, CUDA graphs) last.
# Prints one table of every check at the end; logs and the table's TSV under ${OUT:-/tmp/gpu_check}.
#   bash benchmarks/gpu_check.sh
# A dry run of the plumbing on a CPU: DEVICE=cpu BATCHES=8 SECS=2 CLIENTS=2 ROWS=4 BIG_ROWS=4 bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
TSV="$OUT/gpu_checks.tsv"; : > "$TSV"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}; BATCHES=${BATCHES:-32,256,1024}; SECS=${SECS:-8}; CLIENTS=${CLIENTS:-16}; ROWS=${ROWS:-64}; BIG_ROWS=${BIG_ROWS:-128}
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

echo "== 1. staged early exit vs full forward"
timeout 200 $PY benchmarks/exit_speed.py --device $DEVICE --batches $BATCHES --precision fp32,bf16 \
  --channels-last --repeats 20 --tsv "$TSV" 2>&1 | tee "$OUT/exit_speed.txt"

echo "== 2. batching core vs bare forward"
for cfg in configs/go9.yaml configs/go9_paper.yaml; do
  for prec in fp32 bf16; do
    timeout 60 $PY benchmarks/selfplay_speed.py --synthetic --device $DEVICE --config "$cfg" --clients $CLIENTS \
      --rows $ROWS --seconds $SECS --ceiling-seconds $((SECS / 2 + 1)) --precision "$prec" --tsv "$TSV" 2>&1 | tee -a "$OUT/server.txt"
  done
done
# many small requests (a 16-core machine's actors, 16 games x 8 leaves each), with 2 ms of
# tree work between a client's requests
timeout 60 $PY benchmarks/selfplay_speed.py --synthetic --device $DEVICE --config configs/go9.yaml --clients 13 \
  --rows $BIG_ROWS --client-ms 2 --seconds $SECS --ceiling-seconds $((SECS / 2 + 1)) --tsv "$TSV" 2>&1 | tee -a "$OUT/server.txt"
timeout 120 $PY benchmarks/selfplay_speed.py --synthetic --device $DEVICE --config configs/go9.yaml --clients $CLIENTS \
  --rows $ROWS --seconds $SECS --ceiling-seconds $((SECS / 2 + 1)) --compile --tsv "$TSV" 2>&1 | tee -a "$OUT/server.txt"

echo "== all checks"
$PY - "$TSV" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
head = ["check", "network", "batch", "setting", "measured", "reference", "ratio", "bar", "verdict"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
fails = sum(r[-1] == "FAIL" for r in rows)
print(f"{len(rows)} rows, {sum(r[-1] == 'PASS' for r in rows)} PASS, {fails} FAIL")
PY
