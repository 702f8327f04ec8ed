"""The benchmark's training run in JAX (jit on CPU, float32): the same algorithm,
data, split, init and batch order as mlp_numpy.py and tapegrad's `paper` preset
(3072 -> 128 ReLU -> 20, mean softmax cross-entropy, gradient-form L2 with the
bias included, momentum v = gamma*v + alpha*g, W -= v, fixed batch order with
the last partial batch kept, a validation pass after every epoch). Gradients come
from jax.value_and_grad; the step (forward, backward, update) is one jitted call.

Usage: mlp_jax.py DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout (see common.py).
"""
import time

import jax
import jax.numpy as jnp

from common import ALPHA, BATCH, GAMMA, LAM, init, load, report

xtr, ytr, xva, yva, epochs, load_seconds = load()
xtr, xva, ytr, yva = jnp.asarray(xtr), jnp.asarray(xva), jnp.asarray(ytr.astype("int32")), jnp.asarray(yva.astype("int32"))
params = [jnp.asarray(a) for a in (*init(3072, 128), *init(128, 20))]
vel = [jnp.zeros_like(p) for p in params]
alpha, gamma, lam, batch = ALPHA, GAMMA, LAM, BATCH


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

report("jax", f"JAX {jax.__version__} jit on CPU (float32, XLA)", history, load_seconds)
