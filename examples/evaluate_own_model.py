"""The example of docs/own-model.md: a small CNN trained with plain PyTorch on the 8x8 digits, evaluated by
robustbench_mix.evaluate, summed up by headline and saved where compare and report read it."""
import sys

import torch

import robustbench_mix as rbm
from robustbench_mix.data.sources import load_digits

out = sys.argv[1] if len(sys.argv) > 1 else "results/own-cnn"  # where the rows are saved
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0  # the training's seed
d = load_digits(None)  # scikit-learn's 8x8 digits: uint8 (N, 1, 8, 8) images and their labels
x, y = d.train_x.float() / 255, d.train_y  # the model takes pixels in [0, 1]
torch.manual_seed(seed)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 10))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for _ in range(150):  # full-batch training, a few seconds on a CPU
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

# the test images as a DataLoader (tensors (images, labels), a Dataset or a data set name work too)
test = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(d.test_x, d.test_y), batch_size=100)
rows = rbm.evaluate(model.eval(), test, attacks=("fgsm", "pgd"), corruptions="all", name="user:cnn")
print(rbm.headline(rows))
checks = rbm.diagnostics(rows)
print(checks[checks["attack"] == "check"][["metric", "value"]].to_string(index=False))
print(rbm.save_runs(rows, out))
