#!/usr/bin/env bash
# Device check for the vision jobs (issue 7): the CUDA path of train/trace, run where a GPU is lent.
#   1. the fast vision tests with the training device left on "auto" (-> CUDA there);
#   2. the digits 4-exit model trained on the GPU, then its traces;
#   3. the CIFAR-100 path at full size (50,000 + 10,000 random images written in the real
#      pickle layout: no real CIFAR is reachable from the device) for 2 epochs, timed per epoch.
# Writes logs under ${OUT:-/tmp/vision_gpu}.
set -u
OUT=${OUT:-/tmp/vision_gpu}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python3 -m pytest -q -p no:cacheprovider tests/test_vision1_losses.py tests/test_vision1_models.py \
  tests/test_vision1_datasets.py tests/test_vision1_train.py 2>&1 | tee "$OUT/tests.log" | tail -25
python3 -m eexit_vision.train --config configs/vision_digits.yaml --set train.out="$OUT/digits" \
  --set train.progress=false --set train.tensorboard=false 2>&1 | tail -8
python3 -m eexit_vision.trace --checkpoint "$OUT/digits/last.pt" --split test --out "$OUT/digits_test.npz" --device cuda
python3 - "$OUT" <<'PY'
import sys, time, torch
from pathlib import Path
from eexit_vision.datasets import write_tiny_cifar
from eexit_vision.config import load_vision_config
from eexit_vision import train as T
out = Path(sys.argv[1]); root = Path("/tmp/cifar_layout")
t0 = time.time(); write_tiny_cifar(root, "cifar100", train=50000, test=10000); print(f"wrote 60k images in {time.time()-t0:.1f}s")
cfg = load_vision_config({"data": {"name": "cifar100", "root": str(root)},
    "model": {"name": "resnet", "width": 16, "blocks": 9}, "loss": {"name": "power_sqrt", "lam": 0.005},
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.1, "out": str(out / "cifar"), "progress": False, "tensorboard": False}})
t0 = time.time(); ticks = []
res = T.train(cfg, log=lambda s: (ticks.append(time.time()), print(s)))
print("device", T.select_device("auto"), "epoch wall s:", [round(b - a, 1) for a, b in zip([t0] + ticks, ticks)])
print("test acc per exit (random labels, ~1% expected):", res.test_accuracy.round(4).tolist(), "flops", res.flops.tolist())
PY
