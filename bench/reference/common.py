"""What the benchmark's reference runs (numpy, JAX, PyTorch) share: the
command line, the data exactly as tapegrad prepares it, the report's init, the
hyperparameters, and the one JSON line each prints.

Usage of every reference: SCRIPT DATA_DIR SPLIT_FILE EPOCHS  -> one JSON line on stdout.
"""
import json
import resource
import sys
import time

import numpy as np

# The headline run: alpha, gamma, lambda (gradient-form L2, bias included), batch size.
ALPHA, GAMMA, LAM, BATCH = 0.001, 0.8, 0.01, 128


def load():
    """(train x, train y, val x, val y, epochs, load seconds): float32 rows z-scored per
    image and channel (population std), labels int64, the split from tapegrad's file."""
    data_dir, split_file, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t0 = time.perf_counter()
    raw = np.fromfile(f"{data_dir}/train.bin", dtype=np.uint8).reshape(-1, 3074)
    split = np.fromfile(split_file, dtype=np.int32)
    n_train = int(split[0])

    def prepare(idx):
        px = raw[idx, 2:].astype(np.float32).reshape(-1, 3, 1024)
        mean = px.mean(axis=2, keepdims=True)
        std = px.std(axis=2, keepdims=True)
        std[std == 0] = 1
        return ((px - mean) / std).reshape(-1, 3072).astype(np.float32), raw[idx, 0].astype(np.int64)

    xtr, ytr = prepare(split[1 : 1 + n_train])
    xva, yva = prepare(split[1 + n_train :])
    return xtr, ytr, xva, yva, epochs, time.perf_counter() - t0


def init(n_in, n_out):
    """The report's init: np.random.seed(42) per layer, uniform [0, 0.01) over the
    (n_in + 1) x n_out matrix whose row 0 is the bias. Returns (W, b) as numpy float32."""
    np.random.seed(42)
    wb = np.random.uniform(0, 0.01, (n_in + 1, n_out)).astype(np.float32)
    return wb[1:].copy(), wb[0].copy()


def report(backend, description, history, load_seconds):
    print(json.dumps({
        "backend": backend, "description": description, "epochs": history, "loadSeconds": load_seconds,
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
