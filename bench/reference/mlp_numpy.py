"""Reference implementation of the benchmark's training run in numpy (float32).

The identical algorithm to tapegrad's `paper` preset on the headline network
(3072 -> 128 ReLU -> 20, coarse labels): per-image z-scoring (population std),
the report's init (np.random.seed(42) per layer, uniform [0, 0.01), bias row
first), batch 128 in fixed order with the last partial batch kept, mean softmax
cross-entropy, gradient-form L2 (g + lambda*W, bias included), momentum
v = gamma*v + alpha*g, W -= v, and a validation pass after every epoch. The
split comes from tapegrad (a file of int32 indices), so both runs see the same
rows in the same order and their losses can be compared, not only their times.

Usage: mlp_numpy.py DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout (see common.py).
"""
import os
import time

import numpy as np

from common import ALPHA, BATCH, GAMMA, LAM, init, load, report

xtr, ytr, xva, yva, epochs, load_seconds = load()
w1, b1 = init(3072, 128)
w2, b2 = init(128, 20)
params = [w1, b1, w2, b2]
vel = [np.zeros_like(p) for p in params]
alpha, gamma, lam, batch = np.float32(ALPHA), np.float32(GAMMA), np.float32(LAM), BATCH


def forward(x):
    h = np.maximum(x @ w1 + b1, 0)
    z = h @ w2 + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return h, logp


history = []
for epoch in range(epochs):
    start = time.perf_counter()
    loss_sum = 0.0
    correct = 0
    for s in range(0, len(ytr), batch):
        x, y = xtr[s : s + batch], ytr[s : s + batch]
        n = len(y)
        h, logp = forward(x)
        loss_sum += float(-logp[np.arange(n), y].sum())
        correct += int((logp.argmax(axis=1) == y).sum())
        d = np.exp(logp)
        d[np.arange(n), y] -= 1
        d /= n
        dh = (d @ w2.T) * (h > 0)
        grads = [x.T @ dh, dh.sum(axis=0), h.T @ d, d.sum(axis=0)]
        for p, v, g in zip(params, vel, grads):
            g += lam * p
            v *= gamma
            v += alpha * g
            p -= v
    vl, vc = 0.0, 0
    for s in range(0, len(yva), 1000):
        _, logp = forward(xva[s : s + 1000])
        y = yva[s : s + 1000]
        vl += float(-logp[np.arange(len(y)), y].sum())
        vc += int((logp.argmax(axis=1) == y).sum())
    history.append({
        "seconds": time.perf_counter() - start,
        "trainLoss": loss_sum / len(ytr), "trainAccuracy": correct / len(ytr),
        "valLoss": vl / len(yva), "valAccuracy": vc / len(yva),
    })


def blas_kernel():
    """The BLAS numpy runs and the kernel it picked (threadpoolctl), with the
    OPENBLAS_* variables as this process saw them."""
    seen = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"BLAS kernel unknown: pip install threadpoolctl; {seen}"
    libs = [f"{i['internal_api']} {i['version']}, kernel {i.get('architecture')}, {i['num_threads']} threads" for i in threadpool_info() if i.get("user_api") == "blas"]
    return f"{'; '.join(libs) or 'no BLAS found'}; {seen}"


report("numpy", f"numpy {np.__version__} (float32; {blas_kernel()})", history, load_seconds)
