"""The benchmark's training run in PyTorch (CPU, float32, eager autograd): the
same algorithm, data, split, init and batch order as mlp_numpy.py and tapegrad's
`paper` preset (see there); the update is written out (g + lam*W, v = gamma*v +
alpha*g, W -= v) so that it is the report's, not torch.optim.SGD's variant.

Usage: mlp_torch.py DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout.
"""
import json
import resource
import sys
import time

import numpy as np
import torch

data_dir, split_file, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = np.fromfile(f"{data_dir}/train.bin", dtype=np.uint8).reshape(-1, 3074)
split = np.fromfile(split_file, dtype=np.int32)
n_train = int(split[0])
train_idx, val_idx = split[1 : 1 + n_train], split[1 + n_train :]


def prepare(idx):
    px = raw[idx, 2:].astype(np.float32).reshape(-1, 3, 1024)
    mean = px.mean(axis=2, keepdims=True)
    std = px.std(axis=2, keepdims=True)
    std[std == 0] = 1
    x = ((px - mean) / std).reshape(-1, 3072).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(raw[idx, 0].astype(np.int64))


t0 = time.perf_counter()
xtr, ytr = prepare(train_idx)
xva, yva = prepare(val_idx)
load_seconds = time.perf_counter() - t0


def init(n_in, n_out):
    np.random.seed(42)
    wb = np.random.uniform(0, 0.01, (n_in + 1, n_out)).astype(np.float32)
    return torch.from_numpy(wb[1:].copy()).requires_grad_(), torch.from_numpy(wb[0].copy()).requires_grad_()


params = [*init(3072, 128), *init(128, 20)]
vel = [torch.zeros_like(p) for p in params]
alpha, gamma, lam, batch = 0.001, 0.8, 0.01, 128


def logits_of(x):
    w1, b1, w2, b2 = params
    return torch.relu(x @ w1 + b1) @ w2 + b2


history = []
for epoch in range(epochs):
    start = time.perf_counter()
    loss_sum, correct = 0.0, 0
    for s in range(0, len(ytr), batch):
        x, y = xtr[s : s + batch], ytr[s : s + batch]
        z = logits_of(x)
        loss = torch.nn.functional.cross_entropy(z, y)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p, v in zip(params, vel):
                v.mul_(gamma).add_(p.grad + lam * p, alpha=alpha)
                p.sub_(v)
        loss_sum += float(loss.detach()) * len(y)
        correct += int((z.argmax(dim=1) == y).sum())
    vl, vc = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(yva), 1000):
            z = logits_of(xva[s : s + 1000])
            y = yva[s : s + 1000]
            vl += float(torch.nn.functional.cross_entropy(z, y, reduction="sum"))
            vc += int((z.argmax(dim=1) == y).sum())
    history.append({
        "seconds": time.perf_counter() - start,
        "trainLoss": loss_sum / len(ytr), "trainAccuracy": correct / len(ytr),
        "valLoss": vl / len(yva), "valAccuracy": vc / len(yva),
    })

print(json.dumps({
    "backend": "pytorch", "description": f"PyTorch {torch.__version__} on CPU ({torch.get_num_threads()} threads, float32)",
    "epochs": history, "loadSeconds": load_seconds,
    "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
