"""The README's example: a model trained with plain PyTorch, evaluated by robustbench_mix.evaluate."""
import torch

import robustbench_mix as rbm
from robustbench_mix.data import load_digits

d = load_digits(None)  # scikit-learn's 8x8 digits; any (images, labels) pair of tensors works too
x, y = d.train_x.float() / 255, d.train_y  # the model takes pixels in [0, 1]
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(300):  # full-batch training, a few seconds on a CPU
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()

rows = rbm.evaluate(model.eval(), "digits", attacks=("fgsm", "pgd"), eps=(2 / 255, 8 / 255), corruptions=("all",),
                    name="user:mlp")
acc = rows[(rows["metric"] == "acc") & ~rows["attack"].str.match(r"corrupt:\w+:\d")]
print(acc[["attack", "eps_255", "value"]].to_string(index=False))
