"""The benchmark's training run in PyTorch (CPU, float32, eager autograd): the
same algorithm, data, split, init and batch order as mlp_numpy.py and tapegrad's
`paper` preset (see there); the update is written out (g + lam*W, v = gamma*v +
alpha*g, W -= v) so that it is the report's, not torch.optim.SGD's variant.

Usage: mlp_torch.py DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout (see common.py).
"""
import time

import torch

from common import ALPHA, BATCH, GAMMA, LAM, init, load, report

xtr, ytr, xva, yva, epochs, load_seconds = load()
xtr, ytr, xva, yva = (torch.from_numpy(a) for a in (xtr, ytr, xva, yva))
params = [torch.from_numpy(a).requires_grad_() for a in (*init(3072, 128), *init(128, 20))]
vel = [torch.zeros_like(p) for p in params]
alpha, gamma, lam, batch = ALPHA, GAMMA, LAM, BATCH


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

report("pytorch", f"PyTorch {torch.__version__} on CPU ({torch.get_num_threads()} threads, float32)", history, load_seconds)
