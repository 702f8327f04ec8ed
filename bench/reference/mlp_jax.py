"""The benchmark's training run in JAX (jit on CPU, float32): the same algorithm,
data, split, init and batch order as mlp_numpy.py and tapegrad's `paper` preset
(3072 -> 128 ReLU -> 20, mean softmax cross-entropy, gradient-form L2 with the
bias included, momentum v = gamma*v + alpha*g, W -= v, fixed batch order with
the last partial batch kept, a validation pass after every epoch). Gradients come
from jax.value_and_grad; the step (forward, backward, update) is one jitted call.

Usage: mlp_jax.py DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout.
"""
import json
import resource
import sys
import time

import numpy as np
import jax
import jax.numpy as jnp

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
    return ((px - mean) / std).reshape(-1, 3072).astype(np.float32), raw[idx, 0].astype(np.int32)


t0 = time.perf_counter()
xtr, ytr = prepare(train_idx)
xva, yva = prepare(val_idx)
xtr, xva = jnp.asarray(xtr), jnp.asarray(xva)
load_seconds = time.perf_counter() - t0


def init(n_in, n_out):
    np.random.seed(42)
    wb = np.random.uniform(0, 0.01, (n_in + 1, n_out)).astype(np.float32)
    return jnp.asarray(wb[1:]), jnp.asarray(wb[0])


params = [*init(3072, 128), *init(128, 20)]
vel = [jnp.zeros_like(p) for p in params]
alpha, gamma, lam, batch = 0.001, 0.8, 0.01, 128


def logits_of(p, x):
    w1, b1, w2, b2 = p
    return jnp.maximum(x @ w1 + b1, 0) @ w2 + b2


def loss_of(p, x, y):
    logp = jax.nn.log_softmax(logits_of(p, x))
    return -jnp.take_along_axis(logp, y[:, None], axis=1).mean(), logp


@jax.jit
def step(p, v, x, y):
    (loss, logp), g = jax.value_and_grad(loss_of, has_aux=True)(p, x, y)
    v = [gamma * vi + alpha * (gi + lam * pi) for pi, vi, gi in zip(p, v, g)]
    p = [pi - vi for pi, vi in zip(p, v)]
    return p, v, loss * x.shape[0], (logp.argmax(axis=1) == y).sum()


@jax.jit
def evaluate(p, x, y):
    logp = jax.nn.log_softmax(logits_of(p, x))
    return -jnp.take_along_axis(logp, y[:, None], axis=1).sum(), (logp.argmax(axis=1) == y).sum()


history = []
for epoch in range(epochs):
    start = time.perf_counter()
    loss_sum, correct = 0.0, 0
    for s in range(0, len(ytr), batch):
        params, vel, l, c = step(params, vel, xtr[s : s + batch], ytr[s : s + batch])
        loss_sum += float(l)
        correct += int(c)
    vl, vc = 0.0, 0
    for s in range(0, len(yva), 1000):
        l, c = evaluate(params, xva[s : s + 1000], yva[s : s + 1000])
        vl += float(l)
        vc += int(c)
    history.append({
        "seconds": time.perf_counter() - start,
        "trainLoss": loss_sum / len(ytr), "trainAccuracy": correct / len(ytr),
        "valLoss": vl / len(yva), "valAccuracy": vc / len(yva),
    })

print(json.dumps({
    "backend": "jax", "description": f"JAX {jax.__version__} jit on CPU (float32, XLA)",
    "epochs": history, "loadSeconds": load_seconds,
    "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
