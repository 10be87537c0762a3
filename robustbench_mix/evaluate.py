"""Evaluators: clean metrics, calibration, adversarial accuracy and memorization, returned as tidy rows.

A row here is ``{"split", "attack", "eps", "metric", "value"}``; :mod:`results` adds the config and
provenance. Metrics stay on the device until one ``.tolist()`` per evaluation.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .attacks import default_step_size, frozen_eval, get_attack
from .data import Prepared, to_float

ECE_BINS = 15


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA; a no-op elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prep(x: torch.Tensor) -> torch.Tensor:
    x = to_float(x)
    return x.contiguous(memory_format=torch.channels_last) if x.is_cuda and x.dim() == 4 else x


@torch.no_grad()
def predict(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """float32 logits for uint8 images, in large batches, in eval mode."""
    with frozen_eval(model):
        outs = []
        for i in range(0, len(x), batch_size):
            with autocast_for(x.device):
                outs.append(model(prep(x[i:i + batch_size])).float())
    return torch.cat(outs) if outs else torch.zeros(0)


def expected_calibration_error(probs: torch.Tensor, y: torch.Tensor, bins: int = ECE_BINS) -> torch.Tensor:
    """ECE with equal-width confidence bins (Guo et al., 2017)."""
    conf, pred = probs.max(1)
    correct = (pred == y).float()
    idx = torch.clamp((conf * bins).long(), max=bins - 1)
    s_conf = torch.zeros(bins, device=probs.device).index_add_(0, idx, conf)
    s_acc = torch.zeros(bins, device=probs.device).index_add_(0, idx, correct)
    return (s_conf - s_acc).abs().sum() / max(len(y), 1)


def accuracy_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {"acc": (logits.argmax(1) == y).float().mean()}
    if logits.shape[1] >= 5:
        top5 = logits.topk(5, dim=1).indices
        out["top5_acc"] = (top5 == y[:, None]).any(1).float().mean()
    return out


def clean_metrics(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    m = accuracy_metrics(logits, y)
    m["nll"] = F.cross_entropy(logits, y)
    m["ece"] = expected_calibration_error(logits.softmax(1), y)
    return m


def memorization_metrics(logits, noisy_y, true_y, corrupted) -> list[tuple[str, str, torch.Tensor]]:
    """Training-set predictions split by whether the label was corrupted.

    ``memorized``: fraction of corrupted examples predicted as their (random) noisy label;
    ``acc``: accuracy against the true labels on each subset.
    """
    pred = logits.argmax(1)
    rows = []
    for split, mask in (("train_clean", ~corrupted), ("train_corrupted", corrupted)):
        if mask.any():
            rows.append((split, "acc", (pred[mask] == true_y[mask]).float().mean()))
    if corrupted.any():
        rows.append(("train_corrupted", "memorized", (pred[corrupted] == noisy_y[corrupted]).float().mean()))
    return rows


def row(split, metric, value, attack="none", eps=0.0) -> dict:
    return {"split": split, "attack": attack, "eps": eps, "metric": metric, "value": value}


def finish(rows: list[dict]) -> list[dict]:
    """One host sync for all device scalars."""
    vals = torch.stack([r["value"].float().cpu() if torch.is_tensor(r["value"]) else torch.tensor(float(r["value"]))
                        for r in rows]).tolist() if rows else []
    for r, v in zip(rows, vals, strict=True):
        r["value"] = v
    return rows


def curve_rows(model, data: Prepared, batch_size: int) -> list[dict]:
    """The cheap per-epoch evaluation: clean test metrics, validation accuracy, memorization."""
    rows = [row("test", k, v) for k, v in clean_metrics(predict(model, data.test_x, batch_size),
                                                         data.test_y).items()]
    if len(data.val_y):
        rows += [row("val", k, v) for k, v in clean_metrics(predict(model, data.val_x, batch_size),
                                                            data.val_y).items()]
    if data.corrupted.any():
        logits = predict(model, data.train_x, batch_size)
        rows += [row(s, m, v) for s, m, v in
                 memorization_metrics(logits, data.train_y, data.train_true_y, data.corrupted)]
    return rows


def attack_rows(model, x_u8, y, attack: str, eps_list, *, steps: int, step_size: float | None,
                batch_size: int, seed: int, loss: str = "ce") -> list[dict]:
    """Accuracy under ``attack`` at each epsilon (in /255 units) on (x_u8, y), model frozen in eval mode."""
    fn = get_attack(attack)
    rows = []
    with frozen_eval(model):
        for e255 in eps_list:
            eps = e255 / 255.0
            ss = (step_size / 255.0) if step_size else default_step_size(eps, steps)
            torch.manual_seed(seed)  # the random start is reproducible per (run, attack, eps)
            logits, linf = [], torch.zeros((), device=x_u8.device)
            for i in range(0, len(x_u8), batch_size):
                x = prep(x_u8[i:i + batch_size])
                yb = y[i:i + batch_size]
                x_adv = fn(model, x, yb, eps, steps=steps, step_size=ss, loss=loss) if eps > 0 else x
                linf = torch.maximum(linf, (x_adv - x).abs().amax())
                with torch.no_grad():
                    logits.append(model(x_adv).float())
            for k, v in accuracy_metrics(torch.cat(logits), y).items():
                rows.append(row("test", k, v, attack, round(eps, 6)))
            rows.append(row("test", "max_linf_255", linf * 255.0, attack, round(eps, 6)))
    return rows


def final_rows(model, data: Prepared, exp, batch_size: int) -> list[dict]:
    """Everything measured at the end of a run: the curve metrics plus every attack at every epsilon."""
    rows = curve_rows(model, data, batch_size)
    n = exp.attack_samples or len(data.test_y)
    x, y = data.test_x[:n], data.test_y[:n]
    for a in exp.attacks:
        rows += attack_rows(model, x, y, a, exp.eps, steps=exp.attack_steps, step_size=exp.attack_step_size,
                            batch_size=batch_size, seed=exp.seed)
    return finish(rows)
