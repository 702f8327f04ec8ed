"""A CNN training step in JAX (jit on CPU, float32) for comparison with tapegrad's
CNN bench: the same step as cnn_torch.py. examples/configs/cnn.yaml's architecture
(conv 3→16 3×3 pad 1, batchNorm with the batch's statistics, relu, maxPool 2, conv
16→32, batchNorm, relu, maxPool 2, flatten, dropout 0.25, dense → 20), Adam (lr 1e-3),
batch 128, on real CIFAR-100 rows z-scored per image. Written with jax.numpy and lax
only (optax and flax are not needed): the forward pass, jax.value_and_grad and the
Adam update are one jitted call. Times BATCHES steps after one warm-up step (which
also compiles), extrapolated to an epoch of 40,000 images.

Usage: cnn_jax.py DATA_DIR [BATCHES=12]  -> one JSON line on stdout.
"""
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

data_dir = sys.argv[1]
batches = int(sys.argv[2]) if len(sys.argv) > 2 else 12
BATCH, LR, B1, B2, EPS = 128, 1e-3, 0.9, 0.999, 1e-8
raw = np.fromfile(f"{data_dir}/train.bin", dtype=np.uint8).reshape(-1, 3074)[: (batches + 1) * BATCH]
px = raw[:, 2:].astype(np.float32).reshape(-1, 3, 1024)
px = (px - px.mean(axis=2, keepdims=True)) / np.maximum(px.std(axis=2, keepdims=True), 1e-12)
x = jnp.asarray(px.reshape(-1, 3, 32, 32))
y = jnp.asarray(raw[:, 0].astype(np.int32))


def uniform(key, shape, fan_in):
    """PyTorch's default init for conv and linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


k = jax.random.split(jax.random.PRNGKey(0), 6)
params = {
    "c1w": uniform(k[0], (16, 3, 3, 3), 27), "c1b": uniform(k[1], (16,), 27),
    "g1": jnp.ones(16), "b1": jnp.zeros(16),
    "c2w": uniform(k[2], (32, 16, 3, 3), 144), "c2b": uniform(k[3], (32,), 144),
    "g2": jnp.ones(32), "b2": jnp.zeros(32),
    "dw": uniform(k[4], (32 * 8 * 8, 20), 2048), "db": uniform(k[5], (20,), 2048),
}


def conv(h, w, b):
    out = lax.conv_general_dilated(h, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return out + b[None, :, None, None]


def batch_norm(h, g, b):
    # Training mode: the batch's mean and (biased) variance per channel, as PyTorch and tapegrad use.
    mean = h.mean(axis=(0, 2, 3), keepdims=True)
    var = ((h - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    return (h - mean) / jnp.sqrt(var + 1e-5) * g[None, :, None, None] + b[None, :, None, None]


def max_pool(h):
    return lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def loss_of(p, xb, yb, key):
    h = max_pool(jax.nn.relu(batch_norm(conv(xb, p["c1w"], p["c1b"]), p["g1"], p["b1"])))
    h = max_pool(jax.nn.relu(batch_norm(conv(h, p["c2w"], p["c2b"]), p["g2"], p["b2"])))
    h = h.reshape(h.shape[0], -1)
    keep = jax.random.bernoulli(key, 0.75, h.shape)
    h = jnp.where(keep, h / 0.75, 0.0)
    logp = jax.nn.log_softmax(h @ p["dw"] + p["db"])
    return -jnp.take_along_axis(logp, yb[:, None], axis=1).mean()


@jax.jit
def step(p, m, v, t, xb, yb, key):
    loss, g = jax.value_and_grad(loss_of)(p, xb, yb, key)
    m = jax.tree_util.tree_map(lambda mi, gi: B1 * mi + (1 - B1) * gi, m, g)
    v = jax.tree_util.tree_map(lambda vi, gi: B2 * vi + (1 - B2) * gi * gi, v, g)
    scale = LR * jnp.sqrt(1 - B2**t) / (1 - B1**t)
    p = jax.tree_util.tree_map(lambda pi, mi, vi: pi - scale * mi / (jnp.sqrt(vi) + EPS), p, m, v)
    return p, m, v, loss


m = jax.tree_util.tree_map(jnp.zeros_like, params)
v = jax.tree_util.tree_map(jnp.zeros_like, params)
keys = jax.random.split(jax.random.PRNGKey(1), batches + 1)


def run(b, p, m, v):
    xb, yb = x[b * BATCH : (b + 1) * BATCH], y[b * BATCH : (b + 1) * BATCH]
    p, m, v, loss = step(p, m, v, jnp.float32(b + 1), xb, yb, keys[b])
    return p, m, v, float(loss)  # float() waits for the step, as cnn_torch.py's float(loss) does


params, m, v, _ = run(0, params, m, v)
t0 = time.perf_counter()
for b in range(1, batches + 1):
    params, m, v, _ = run(b, params, m, v)
per_batch = (time.perf_counter() - t0) / batches
print(json.dumps({"system": "jax", "description": f"JAX {jax.__version__} jit on CPU (float32, XLA)",
                  "secondsPerBatch": per_batch, "secondsPerEpoch": per_batch * (40000 / 128)}))
