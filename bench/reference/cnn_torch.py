"""A CNN training step in PyTorch (CPU, float32) for comparison with tapegrad's
bench/cnn-epoch.ts: examples/configs/cnn.yaml's architecture (conv 3→16 3×3 pad 1,
batchNorm, relu, maxPool 2, conv 16→32, batchNorm, relu, maxPool 2, flatten, dropout
0.25, dense → 20), Adam (lr 1e-3), batch 128, on real CIFAR-100 rows z-scored per image.
Times BATCHES steps after one warm-up step, extrapolated to an epoch of 40,000 images.

With a third argument cnn-coarse: examples/configs/cnn-coarse.yaml's network (conv 32, 64,
128, each batchNorm, relu, maxPool 2; dropout 0.3; dense -> 20) and its SGD (lr 0.05, Nesterov
momentum 0.9, weight decay 5e-4), no augmentation (data work outside the step).

Usage: cnn_torch.py DATA_DIR [BATCHES=12] [cnn|cnn-coarse]  -> one JSON line on stdout.
"""
import json
import sys
import time

import numpy as np
import torch

data_dir = sys.argv[1]
batches = int(sys.argv[2]) if len(sys.argv) > 2 else 12
name = sys.argv[3] if len(sys.argv) > 3 else "cnn"
raw = np.fromfile(f"{data_dir}/train.bin", dtype=np.uint8).reshape(-1, 3074)[: (batches + 1) * 128]
px = raw[:, 2:].astype(np.float32).reshape(-1, 3, 1024)
px = (px - px.mean(axis=2, keepdims=True)) / np.maximum(px.std(axis=2, keepdims=True), 1e-12)
x = torch.from_numpy(px.reshape(-1, 3, 32, 32).copy())
y = torch.from_numpy(raw[:, 0].astype(np.int64))
torch.manual_seed(0)
if name == "cnn":
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(0.25), torch.nn.Linear(32 * 8 * 8, 20),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
else:
    block = lambda i, o: [torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    model = torch.nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128),
                                torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(128 * 4 * 4, 20))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def step(b):
    xb, yb = x[b * 128 : (b + 1) * 128], y[b * 128 : (b + 1) * 128]
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    opt.step()
    return float(loss.detach())


step(0)
t0 = time.perf_counter()
for b in range(1, batches + 1):
    step(b)
per_batch = (time.perf_counter() - t0) / batches
print(json.dumps({"system": "pytorch", "description": f"PyTorch {torch.__version__} CPU ({torch.get_num_threads()} threads)",
                  "secondsPerBatch": per_batch, "secondsPerEpoch": per_batch * (40000 / 128)}))
