"""bench:fl's in-run PyTorch baseline: the same FedAvg MNIST CNN as models/cnn (conv5x5-32 same, pool, conv5x5-64 same,
pool, dense 512 relu, dense 10 logits), SGD lr 0.05, batch 50, softmax cross-entropy, on the first n_train images of the
IDX files in data_dir (the set bench:fl trains on). Prints one JSON line: training samples/s and the thread count.
Usage: python3 bench/torch_cnn.py DATA_DIR THREADS N_TRAIN
Needs PyTorch (Debian: python3-torch); bench/fl.ts runs it when `import torch` works and says so when it does not."""
import gzip
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

data_dir, threads, n_train = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)


def images(path):
    with gzip.open(path) as f:
        raw = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
    assert magic == 2051, path
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, 1, rows, cols)


def labels(path):
    with gzip.open(path) as f:
        raw = f.read()
    assert struct.unpack(">I", raw[:4])[0] == 2049, path
    return np.frombuffer(raw, np.uint8, offset=8)


x = torch.tensor(images(f"{data_dir}/train-images-idx3-ubyte.gz")[:n_train], dtype=torch.float32) / 255
y = torch.tensor(labels(f"{data_dir}/train-labels-idx1-ubyte.gz")[:n_train], dtype=torch.long)
n_train = len(y)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 5, padding=2)
        self.c2 = nn.Conv2d(32, 64, 5, padding=2)
        self.f1 = nn.Linear(7 * 7 * 64, 512)
        self.f2 = nn.Linear(512, 10)

    def forward(self, v):
        v = F.max_pool2d(F.relu(self.c1(v)), 2)
        v = F.max_pool2d(F.relu(self.c2(v)), 2)
        return self.f2(F.relu(self.f1(v.flatten(1))))


torch.manual_seed(0)
model = CNN()
opt = torch.optim.SGD(model.parameters(), lr=0.05)
B = 50
# One warm-up batch (allocations, thread pool start), then one timed epoch.
opt.zero_grad()
F.cross_entropy(model(x[:B]), y[:B]).backward()
opt.step()
t0 = time.perf_counter()
perm = torch.randperm(n_train)
for i in range(0, n_train, B):
    idx = perm[i : i + B]
    opt.zero_grad()
    F.cross_entropy(model(x[idx]), y[idx]).backward()
    opt.step()
dt = time.perf_counter() - t0
print(
    json.dumps(
        {
            "torch": torch.__version__,
            "threads": threads,
            "samples": n_train,
            "parameters": sum(p.numel() for p in model.parameters()),
            "samples_per_s": round(n_train / dt, 1),
        }
    )
)
