#!/usr/bin/env bash
# The GPU check: on a machine with a GPU (and this checkout set up with `make setup`), under
# 10 minutes: each backbone at 224 px with mixed precision off and on, against the tf.data
# input's own images/s (the input must not be the bottleneck), and the neighbour index build of
# every train photo after training (what the Trainer adds; its photos/s). Writes
# bench/results/backbones-gpu-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -c "import tensorflow as tf; gpus = tf.config.list_physical_devices('GPU'); \
print('GPUs:', gpus); assert gpus, 'TensorFlow sees no GPU'"
exec .venv/bin/python bench/backbones.py --photos "${PHOTOS:-8000}" --sizes 224 --steps 50 \
  --batch-size 64 --backbones mobilenet_v3_small,mobilenet_v3_large,efficientnet_v2_b0,resnet50 \
  --mixed-precision both "$@"
