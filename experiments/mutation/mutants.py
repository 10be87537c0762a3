"""Hand-written mutation analysis of the core computations: does some test notice a wrong number?

Each mutant is one small, plausible bug (an operator, an off-by-one, a wrong axis, a dropped clamp, a wrong
constant or seed) planted in the library where it could reach a results row, with the few tests that should
catch it. The mutant is applied in place, ``python -m pytest -q -x <selection>`` runs with a timeout, and the
file is restored in a ``finally``; the run ends by checking with ``git diff --quiet`` that the library is as it
was. A mutant is *killed* when the selection fails, *survived* when it passes, *timeout* when it hangs.

    python experiments/mutation/mutants.py              # all mutants (about 15 minutes on two cores)
    python experiments/mutation/mutants.py --only NAME  # one (or several: --only A --only B)
    python experiments/mutation/mutants.py --list       # names, files and selections

mutmut / cosmic-ray would rerun the whole suite (about 6 minutes) per mutant; a selection per mutant keeps a
full run short. ``EQUIVALENT`` names the mutants that no test can kill because they change no number (each
with the argument); results.md records the last full run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = "robustbench_mix"


def sel(spec: str) -> tuple[str, ...]:
    """'methods/test_mixing.py:hand or timm' -> pytest arguments (the file under tests/, or all of tests/, then -k)."""
    path, _, k = spec.partition(":")
    return (f"tests/{path}".rstrip("/"),) + (("-k", k) if k else ())


# the tests' files (tests/<subpackage>/test_<module>.py); M: the whole suite, where the tests written against a
# surviving mutant now sit beside the code they check (their -k expression selects them)
M, METH, CORR = "", "methods/test_mixing.py", "corruptions/test_cifar_c.py"
CCR = "reports/test_compare_claims_report.py"
ATT, NUM, DATA = "attacks/test_linf.py", "evaluation/test_numbers.py", "data/test_data.py"
SUB, CHK = "evaluation/test_subset_eps.py", "evaluation/test_checks.py"
ADV, L2T = "methods/test_adversarial.py", "attacks/test_l2.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to robustbench_mix/
    old: str  # must occur exactly once in the file
    new: str
    what: str  # the bug, in words
    tests: str  # 'FILE:-k expression' of the tests that existed before this analysis
    added: str = ""  # '-k expression' over tests/: the tests written because the mutant survived

    def selections(self, baseline: bool) -> list[tuple[str, ...]]:
        """The pytest runs, the new tests first (fast); ``baseline``: the earlier tests only."""
        return ([] if baseline or not self.added else [sel(f"{M}:{self.added}")]) + [sel(self.tests)]


MUTANTS = [
    # ------------------------------------------------------------------------------------------ methods
    Mutant("mixup_no_partner", "methods/mixing.py", "(1.0 - lam) * x[perm]", "(1.0 - lam) * x",
           "mixup mixes each image with itself", f"{METH}:hand_computation or timm_mixup"),
    Mutant("mixup_labels_swapped", "methods/mixing.py",
           "return lam * F.cross_entropy(out, y) + (1.0 - lam) * F.cross_entropy(out, y_b)",
           "return lam * F.cross_entropy(out, y_b) + (1.0 - lam) * F.cross_entropy(out, y)",
           "the label weights are swapped against the image weights", f"{METH}:hand_computation or timm_mixup"),
    Mutant("mixup_beta_second_param", "methods/mixing.py", "rng.beta(alpha, alpha)) if", "rng.beta(alpha, 1.0)) if",
           "lambda ~ Beta(alpha, 1) instead of Beta(alpha, alpha)", f"{METH}:lambda_draws_follow_beta"),
    Mutant("mixup_alpha_zero_boundary", "methods/mixing.py", "if alpha > 0 else 1.0", "if alpha >= 0 else 1.0",
           "alpha = 0 draws Beta(0, 0) instead of no mixing", f"{METH}:alpha_zero"),
    Mutant("manifold_two_points", "methods/mixing.py", "int(rng.integers(3))", "int(rng.integers(2))",
           "manifold mixup never mixes at the last point", f"{METH}:a_third_of_the_time"),
    Mutant("manifold_hidden_no_partner", "methods/mixing.py", "(1.0 - lam) * h[perm]", "(1.0 - lam) * h",
           "the hidden state is mixed with itself", f"{METH}:manifold_mixup_at"),
    Mutant("manifold_labels_unpermuted", "methods/mixing.py", "(out.float(), y, y[perm], lam, num_classes)",
           "(out.float(), y, y, lam, num_classes)", "manifold mixup's loss ignores the partner's label",
           f"{METH}:manifold_mixup_at or manifold_mixup_bce"),
    Mutant("manifold_bce_weights_swapped", "methods/mixing.py",
           "target = lam * F.one_hot(y, num_classes).float() + (1.0 - lam) * F.one_hot(y_b, num_classes).float()",
           "target = (1.0 - lam) * F.one_hot(y, num_classes).float() + lam * F.one_hot(y_b, num_classes).float()",
           "Verma et al.'s BCE target with the weights swapped", f"{METH}:manifold_mixup_bce"),
    Mutant("cutmix_side_no_sqrt", "methods/mixing.py", "r = math.sqrt(1.0 - lam)", "r = 1.0 - lam",
           "box sides scale with 1 - lam, not its square root", f"{METH}:cutmix_box or references_mean_area"),
    Mutant("cutmix_box_off_by_one", "methods/mixing.py", "min(max(cy - cut_h // 2, 0), h)",
           "min(max(cy - cut_h // 2 - 1, 0), h)", "the box starts one row early",
           f"{METH}:cutmix_box or references_mean_area"),
    Mutant("cutmix_box_unclipped", "methods/mixing.py", "min(max(cx + cut_w // 2, 0), w))",
           "max(cx + cut_w // 2, 0))", "the box's right edge is not clipped to the image (its area, the label "
           "weight, is too large)", f"{METH}:cutmix_box or references_mean_area"),
    Mutant("cutmix_mask_inclusive", "methods/mixing.py", "(rows < y2)", "(rows <= y2)",
           "the pasted rows include row y2", f"{METH}:pastes_the_box or timm_where"),
    Mutant("cutmix_kept_wrong_axis", "methods/mixing.py", "/ (h * w)", "/ (h * h)",
           "the kept fraction divides by h * h (a non-square image gets another weight)", f"{METH}:pastes_the_box"),
    Mutant("cutmix_prob_inverted", "methods/mixing.py", "r < prob)", "r > prob)",
           "a batch is CutMixed with probability 1 - prob", f"{METH}:with_probability_prob"),
    Mutant("cutmix_centre_axes_swapped", "methods/mixing.py",
           "cy, cx = int(rng.integers(h)), int(rng.integers(w))", "cy, cx = int(rng.integers(w)), int(rng.integers(h))",
           "the box centre's row is drawn over the width and its column over the height", f"{METH}:cutmix", "cutmix"),
    Mutant("smoothing_sum_not_mean", "methods/smoothing.py", ".log_softmax(1).mean(1).mean()",
           ".log_softmax(1).sum(1).mean()", "label smoothing puts eps on every class instead of eps / K",
           f"{METH}:label_smoothing_targets"),
    Mutant("smoothing_no_one_minus_eps", "methods/smoothing.py", "return (1.0 - eps) * F.cross_entropy(out, y)",
           "return F.cross_entropy(out, y)", "the true class keeps weight 1 (targets sum to 1 + eps)",
           f"{METH}:label_smoothing_targets"),
    # ------------------------------------------------------------------------------------------ attacks
    Mutant("fgsm_descends", "attacks/linf.py", "x + eps * input_grad(model, x, y, loss).sign()",
           "x - eps * input_grad(model, x, y, loss).sign()", "FGSM steps down the loss", f"{ATT}:closed_form"),
    Mutant("fgsm_no_box_clamp", "attacks/linf.py",
           "torch.clamp(x + eps * input_grad(model, x, y, loss).sign(), 0.0, 1.0).detach()",
           "(x + eps * input_grad(model, x, y, loss).sign()).detach()", "FGSM leaves [0, 1]", f"{ATT}:closed_form"),
    Mutant("pgd_no_projection", "attacks/linf.py", "torch.clamp(x_adv - x, -eps, eps)", "(x_adv - x)",
           "iterative attacks are not projected back into the eps-ball", f"{ATT}:ball and not fgsm", "linear_"),
    Mutant("pgd_no_box_clamp", "attacks/linf.py", "return torch.clamp(x + torch.clamp(x_adv - x, -eps, eps), 0.0, 1.0)",
           "return x + torch.clamp(x_adv - x, -eps, eps)", "iterative attacks leave [0, 1]",
           f"{ATT}:ball and not fgsm", "linear_"),
    Mutant("pgd_descends", "attacks/linf.py", "x_adv + step_size * input_grad", "x_adv - step_size * input_grad",
           "iterative attacks step down the loss", f"{ATT}:never_raise or stronger_than", "linear_"),
    Mutant("pgd_one_sided_start", "attacks/linf.py", "uniform_(-eps, eps)", "uniform_(0, eps)",
           "PGD's random start covers only half the ball", f"{ATT}:torchattacks and pgd", "random_start"),
    Mutant("margin_sign", "attacks/base.py", "return (wrong - true).sum()", "return (true - wrong).sum()",
           "the margin loss is minimized", f"{ATT}:margin_loss"),
    Mutant("ce_summed", "attacks/base.py", 'reduction="sum" if summed else "mean")', 'reduction="sum")',
           "CE summed over the batch: the same attacks (sign), but input_grad_abs_mean scales with the batch",
           f"{CHK}:masked", "input_grad"),
    Mutant("default_step_size", "attacks/base.py", "return 2.5 * eps / steps", "return 2.0 * eps / steps",
           "the default step is 2 eps / steps, not Madry et al.'s 2.5 eps / steps",
           f"{ATT}:never_raise or stronger_than", "step_size"),
    # ---------------------------------------------------------------------------------------- evaluators
    Mutant("eps_over_256", "core/units.py", "return eps_255 / LEVELS", "return eps_255 / 256.0",
           "epsilon in 255ths is divided by 256", f"{ATT}:never_raise or stronger_than", "step_size"),
    Mutant("step_size_not_scaled", "evaluation/evaluators.py", "ss = fraction(step_size) if", "ss = step_size if",
           "an explicit step size in 255ths is used as a fraction", f"{ATT}:never_raise or stronger_than",
           "step_size"),
    Mutant("restarts_same_seed", "evaluation/evaluators.py",
           "torch.manual_seed(seed + 1000 * r)", "torch.manual_seed(seed)",
           "every restart draws the same random start", f"{ATT}:restarts", "restart"),
    Mutant("restarts_last_only", "evaluation/evaluators.py", "top1[i:i + batch_size] &= logits.argmax(1) == yb",
           "top1[i:i + batch_size] = logits.argmax(1) == yb",
           "with restarts, the last restart's correctness is kept, not the worst case", f"{ATT}:restarts", "restart"),
    Mutant("linf_not_in_255", "evaluation/evaluators.py", '"linf": linf * LEVELS', '"linf": linf',
           "max_linf_255 is written as a fraction: the in-ball check can no longer fail",
           f"{CHK}:leaves_the_epsilon_ball", "max_linf"),
    Mutant("box_violation_always", "evaluation/evaluators.py",
           "x_adv.amax() - 1.0).clamp_min(0)", "x_adv.amax()).clamp_min(0)",
           "box_violation is the largest pixel, not its excess over 1", f"{CHK}:normally_trained", "max_linf"),
    Mutant("worst_last_attack", "evaluation/evaluators.py", 'worst[fn.norm][e] &= res["top1"]',
           'worst[fn.norm][e] = res["top1"]',
           "the worst case is the last attack's correctness", f"{NUM}:worst_case"),
    Mutant("ece_divides_by_bins", "evaluation/metrics.py", "(s_conf - s_acc).abs().sum() / max(len(y), 1)",
           "(s_conf - s_acc).abs().sum() / bins", "ECE averaged over bins", f"{NUM}:ece"),
    Mutant("nll_of_logits", "evaluation/metrics.py", 'm["nll"] = F.cross_entropy(logits, y)',
           'm["nll"] = F.nll_loss(logits, y)',
           "NLL taken of the logits, not of their log-softmax", f"{NUM}:ece", "clean_metrics"),
    Mutant("top5_is_top4", "evaluation/metrics.py", "top5 = logits.topk(5, dim=1).indices",
           "top5 = logits.topk(4, dim=1).indices", "top-5 accuracy counts 4 classes", f"{NUM}:ece", "clean_metrics"),
    Mutant("memorized_against_true", "evaluation/metrics.py", "(pred[corrupted] == noisy_y[corrupted])",
           "(pred[corrupted] == true_y[corrupted])", "memorized compares with the true labels", f"{DATA}:redrawn"),
    Mutant("memorization_splits_swapped", "evaluation/metrics.py",
           '("train_clean", ~corrupted), ("train_corrupted", corrupted)',
           '("train_clean", corrupted), ("train_corrupted", ~corrupted)',
           "train_clean and train_corrupted accuracies swapped", f"{DATA}:redrawn", "memorization"),
    Mutant("corruption_mean_severity_1", "evaluation/evaluators.py", "for a in accs.get(name, [])]",
           "for a in accs.get(name, [])[:1]]", "the corruption mean uses severity 1 only", f"{CORR}:mean"),
    Mutant("corruption_mean_with_extras", "evaluation/evaluators.py", '(STANDARD_CORRUPTIONS, "mean")',
           '(STANDARD_CORRUPTIONS + EXTRA_CORRUPTIONS, "mean")', "the benchmark mean includes the 4 extra corruptions",
           f"{CORR}:mean"),
    Mutant("corruption_severity_shift", "evaluation/evaluators.py", "corrupt(x_u8[i:i + batch_size], name, s,",
           "corrupt(x_u8[i:i + batch_size], name, s - 1,", "the row labelled severity s holds severity s - 1",
           f"{CORR}:computed_corruption_rows or on_digits", "severity_s"),
    # -------------------------------------------------------------------------------------------- checks
    Mutant("check_eps0_tolerant", "evaluation/checks.py",
           "abs(curve[0.0] - clean) <= 1e-9", "abs(curve[0.0] - clean) <= TOL",
           "the eps-0 check lets a point of difference pass", f"{NUM}:check", "check"),
    Mutant("check_monotone_strict", "evaluation/checks.py", "curve[j] <= curve[i] + TOL", "curve[j] <= curve[i]",
           "the monotonicity check fails on noise below a point", f"{NUM}:check", "check"),
    Mutant("check_blackbox_sign", "evaluation/checks.py", "bb[e] >= curve[e] - TOL", "bb[e] >= curve[e] + TOL",
           "black-box must be a point weaker, not as strong", f"{NUM}:check", "check"),
    # ---------------------------------------------------------------------------------------------- data
    Mutant("label_noise_unseeded_by_run", "data/prepare.py", "np.random.default_rng([seed, 2018])",
           "np.random.default_rng(2018)", "every seed corrupts the same labels", f"{DATA}:label_corruption"),
    Mutant("label_noise_with_replacement", "data/prepare.py", "idx = rng.choice(n, size=k, replace=False)",
           "idx = rng.choice(n, size=k, replace=True)", "labels picked with replacement: fewer than rate * n",
           f"{DATA}:label_corruption"),
    Mutant("label_noise_misses_last_class", "data/prepare.py", "rng.integers(0, num_classes, size=k)",
           "rng.integers(0, num_classes - 1, size=k)", "redrawn labels never take the last class",
           f"{DATA}:label_corruption"),
    Mutant("label_noise_counts_unchanged", "data/prepare.py", "return noisy, noisy != y",
           "return noisy, np.isin(np.arange(n), idx)", "labels redrawn to their own class count as corrupted",
           f"{DATA}:label_corruption or redrawn"),
    Mutant("val_split_overlaps", "data/prepare.py", "return np.sort(order[k:]), np.sort(order[:k])",
           "return np.sort(order[k - 1:]), np.sort(order[:k])",
           "one image is in both the training and the validation split", f"{DATA}:validation_split"),
    Mutant("val_split_unseeded_by_run", "data/prepare.py", "default_rng([seed, 7])", "default_rng(7)",
           "every seed holds out the same images", f"{DATA}:validation_split"),
    Mutant("subset_smallest_remainder", "data/prepare.py", "-(quota - take)))", "(quota - take)))",
           "the extra images go to the smallest remainders", f"{SUB}:attack_subset", "remainders"),
    Mutant("subset_unseeded", "data/prepare.py", "rng = np.random.default_rng(seed)\n    picked",
           "rng = np.random.default_rng()\n    picked", "each run attacks other images", f"{SUB}:attack_subset"),
    Mutant("subset_n_equals_len", "data/prepare.py", "if n <= 0 or n >= len(y):", "if n <= 0 or n > len(y):",
           "n = len(y) goes through the stratified draw", f"{SUB}:attack_subset"),
    Mutant("crop_never_last_offset", "data/augment.py", "torch.randint(0, 2 * PAD + 1,", "torch.randint(0, 2 * PAD,",
           "the crop never shifts by +4", f"{DATA}:crop_flip", "crop"),
    Mutant("flip_vertical", "data/augment.py",
           "out.flip(3)", "out.flip(2)", "the flip is vertical", f"{DATA}:crop_flip"),
    Mutant("flip_rarely", "data/augment.py", "generator=generator) < 0.5", "generator=generator) < 0.1",
           "a tenth of the images are flipped", f"{DATA}:crop_flip", "crop"),
    Mutant("to_float_256", "data/prepare.py",
           "x.float().div_(255.0)", "x.float().div_(256.0)", "pixels scaled by 1/256",
           f"{ATT}:closed_form", "to_float"),
    # ------------------------------------------------------------------------------------- compare, claims
    Mutant("welch_reversed", "reports/compare.py", "stats.ttest_ind(b, a, equal_var=False)",
           "stats.ttest_ind(a, b, equal_var=False)", "the interval of A - B", f"{CCR}:welch or aligns"),
    Mutant("compare_diff_reversed", "reports/compare.py",
           '"diff": xb.mean() - xa.mean()', '"diff": xa.mean() - xb.mean()',
           "the difference A - B", f"{CCR}:aligns"),
    Mutant("compare_std_ddof0", "reports/compare.py", '"base_std": xa.std(ddof=1)', '"base_std": xa.std(ddof=0)',
           "the base side's std without Bessel's correction", f"{CCR}:compare_two_own_models or aligns",
           "sample_std"),
    Mutant("paired_reversed", "reports/compare.py", "d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)",
           "d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)", "the paired interval of A - B",
           f"{CCR}:paired"),
    Mutant("claims_direction_ignored", "reports/claims.py", 'sign = 1.0 if claim["direction"] == "higher" else -1.0',
           "sign = 1.0", "every claim is judged as 'higher'", f"{CCR}:planted or reproduced or inconclusive"),
    Mutant("claims_holds_on_upper_end", "reports/claims.py", '"holds" if s_lo > margin', '"holds" if s_hi > margin',
           "an interval straddling zero holds the direction", f"{CCR}:inconclusive"),
    Mutant("claims_tolerance_or", "reports/claims.py", "<= tol and abs(", "<= tol or abs(",
           "one number within tolerance suffices for 'reproduced'", f"{CCR}:setting_gives or reproduced",
           "both_numbers"),
    Mutant("claims_attack_acc_not_err", "reports/claims.py", "v = 100 * (1 - adv.iloc[0])", "v = 100 * adv.iloc[0]",
           "adversarial error read as accuracy", f"{CCR}:attack_added or planted"),
    Mutant("claims_added_err_sign", "reports/claims.py", "v -= 100 * (1 - ref.iloc[0])", "v += 100 * (1 - ref.iloc[0])",
           "added error adds the clean error instead of subtracting it", f"{CCR}:attack_added"),
    Mutant("claims_best_err_min", "reports/claims.py", "100 * (1 - clean.max())", "100 * (1 - clean.min())",
           "the best test error is the worst epoch's", f"{CCR}:quantities"),
    Mutant("claims_shortest_recipe", "reports/claims.py", 'sort_values(["epochs", "n"]).index[-1]',
           'sort_values(["epochs", "n"]).index[0]', "of several recipes, the shortest is used", f"{CCR}:quantities",
           "recipe"),
    Mutant("claims_paired_never", "reports/claims.py", "if a.keys() == b.keys():", "if False:",
           "two quantities of the same runs compared by Welch, not in pairs", f"{CCR}:quantities"),
    # --------------------------------------------------------------------------------------- corruptions
    Mutant("severity_index_off_by_one", "corruptions/__init__.py", "entry.params[severity - 1]",
           "entry.params[min(severity, 4)]", "severity s uses the parameter of s + 1",
           f"{CORR}:pixel_for_pixel and contrast"),
    Mutant("contrast_param", "corruptions/digital.py", "(.75, .5, .4, .3, 0.15)", "(.75, .5, .45, .3, 0.15)",
           "contrast's severity-3 parameter", f"{CORR}:pixel_for_pixel and contrast", "severity_parameters"),
    Mutant("gaussian_noise_param", "corruptions/noise.py", "(0.04, 0.06, 0.08, 0.09, 0.10)",
           "(0.04, 0.06, 0.08, 0.09, 0.11)", "Gaussian noise's severity-5 sigma", f"{CORR}:noise_corruptions",
           "severity_parameters"),
    Mutant("fog_param", "corruptions/weather.py", "((.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))",
           "((.2, 3), (.5, 3), (0.75, 2.5), (1, 2.5), (1.5, 1.75))", "fog's severity-4 wibble decay", f"{CORR}:fog",
           "severity_parameters"),
    Mutant("contrast_one_mean", "corruptions/digital.py", "np.mean(x, axis=(1, 2), keepdims=True)",
           "np.mean(x, axis=(1, 2, 3), keepdims=True)", "one mean over all channels", f"{CORR}:contrast"),
    Mutant("gaussian_noise_scale", "corruptions/noise.py", "x + rng.normal(size=x.shape, scale=c), 0, 1)",
           "x + rng.normal(size=x.shape, scale=c / 2), 0, 1)", "half the noise", f"{CORR}:noise_corruptions"),
    Mutant("impulse_salt_bias", "corruptions/noise.py", "rng.random(x.shape) < 0.5", "rng.random(x.shape) < 0.7",
           "more salt than pepper", f"{CORR}:noise_corruptions"),
    Mutant("luma_equal_weights", "corruptions/__init__.py", "np.array([0.299, 0.587, 0.114])",
           "np.array([0.333, 0.334, 0.333])", "grey images back as the plain mean", f"{CORR}:grey_images", "luma"),
    Mutant("uint8_rounded", "corruptions/__init__.py", "out = np.nan_to_num(out, nan=0.0).astype(np.uint8)",
           "out = np.rint(np.nan_to_num(out, nan=0.0)).astype(np.uint8)", "pixels rounded, not truncated as np.uint8",
           f"{CORR}:truncated"),
    Mutant("zoom_blur_mean", "corruptions/blur.py", "x = (x + out) / (len(c) + 1)", "x = (x + out) / len(c)",
           "zoom blur's mean divides by one too few", f"{CORR}:pixel_for_pixel and zoom_blur"),
    Mutant("fog_max_val", "corruptions/weather.py", "x * max_val / (max_val + c[0])", "x / (max_val + c[0])",
           "fog drops the max_val rescaling", f"{CORR}:fog"),
    Mutant("frost_weights_swapped", "corruptions/weather.py", "c[0] * np.asarray(x) + c[1] * crops",
           "c[1] * np.asarray(x) + c[0] * crops", "frost blends image and frost the other way", f"{CORR}:frost"),
    # ------------------------------------------- issue 34's round: adversarial training, L2, controls, time
    Mutant("trades_default_beta", "methods/adversarial.py", 'param="β", default=6.0', 'param="β", default=1.0',
           "TRADES' default beta is 1, not the reference's 6", f"{ADV}:not trades_defaults",
           added="trades_defaults"),
    Mutant("adv_steps_zero_allowed", "methods/adversarial.py", 'not_whole("steps", v, 1, MAX_STEPS)',
           'not_whole("steps", v, 0, MAX_STEPS)',
           "the refusal of steps below 1 is dropped", f"{ADV}:bad_options"),
    Mutant("trades_kl_not_per_example", "methods/adversarial.py", "F.softmax(logits, 1)) / len(x)",
           "F.softmax(logits, 1))", "TRADES' KL term summed over the batch, not divided by its size", ADV),
    Mutant("mixup_at_adv_unmixed", "methods/adversarial.py", "lam_adv, perm_adv = lam, perm",
           "lam_adv, perm_adv = 1.0, perm", "mixup_at's adversarial half is not mixed", ADV),
    Mutant("l2_radius_unchecked", "experiment/validation.py", 'checks.append((e >= 0, f"L2 radius',
           'checks.append((True, f"L2 radius',
           "negative L2 radii pass validation", f"{L2T}:eps_l2"),
    Mutant("l2_takes_linf_step", "evaluation/evaluators.py", "if step_size and not l2 else",
           "if step_size else", "L2 attacks take the L-infinity step size (/255) when one is given",
           f"{L2T}:not own_rule", added="own_rule_not_the_linf"),
    Mutant("max_l2_batch_mean", "evaluation/evaluators.py", ".norm(p=2, dim=1).amax())", ".norm(p=2, dim=1).mean())",
           "max_l2 is the batch's mean perturbation, not its largest", f"{L2T}:not largest_perturbation",
           added="largest_perturbation_of_any"),
    Mutant("fgm_l2_old_normalization", "attacks/l2.py", "exact_unit_l2(input_grad(model, x, y, loss, summed=True))",
           "unit_l2(input_grad(model, x, y, loss))", "FGM-L2's earlier +1e-10 normalization of the mean loss", L2T),
    Mutant("project_l2_scales_up", "attacks/l2.py", "delta * torch.min(factor, torch.ones_like(norms))",
           "delta * factor", "the L2 projection scales every perturbation up to the radius", L2T),
    Mutant("aa_control_no_tol", "evaluation/checks.py", "acc[aa][e] <= acc[pgd][e] + TOL",
           "acc[aa][e] <= acc[pgd][e]", "the AutoAttack <= PGD control without its tolerance", CHK),
    Mutant("restarts_control_no_tol", "evaluation/checks.py", "acc[a][e] <= v + TOL", "acc[a][e] <= v",
           "the restarts control without its tolerance", CHK),
    Mutant("timing_any_environment", "execution/timelimit.py",
           'for e in t["epochs"].values() if env is None or e["environment"] == env]',
           'for e in t["epochs"].values()]', "the time-limit estimate mixes epochs timed on other machines",
           "execution/test_time_limit.py:not on_this_environment", added="measured_on_this_environment"),
    Mutant("exact_text_six_digits", "core/parsing.py", 'return f"{v:g}" if float(f"{v:g}") == v else repr(v)',
           'return f"{v:g}"', "compare and the summary pool configurations equal to 6 digits",
           f"{M}:never_pools"),
    Mutant("minus_zero_kept", "core/parsing.py", "return float(text) + 0.0", "return float(text)",
           "-0 on the command line is a run apart from 0", "experiment/test_experiment.py:minus_zero"),
    Mutant("repeats_kept", "core/parsing.py", "return tuple(dict.fromkeys(values))", "return tuple(values)",
           "a value listed twice is run twice", "experiment/test_experiment.py:twice"),
    Mutant("welch_one_side_flat", "reports/compare.py", "if no_spread(a) and no_spread(b):",
           "if no_spread(a) or no_spread(b):", "a Welch interval with one side without spread has no width",
           f"{CCR}:not one_side_without", added="one_side_without_spread"),
]

# mutants that change no number any caller sees, so no test can kill them; each with the argument
EQUIVALENT = {
    "subset_n_equals_len": "with n = len(y) every class gets its whole count (quota = counts, no remainder) and "
                           "the sorted union of all of each class's indices is arange(len(y)): the same indices, "
                           "and attacked_images labels them 'all' either way",
}


def pyc_clear(path: Path) -> None:
    """Remove the file's compiled copies, so that neither the mutant nor the restored source is read stale (a
    pyc is trusted on mtime and size, and a mutant of the same size can be written within the same second)."""
    for p in path.parent.glob(f"__pycache__/{path.stem}.*.pyc"):
        p.unlink(missing_ok=True)


def pytest_run(args: tuple[str, ...], timeout: float) -> tuple[str, str]:
    """'killed' (a test failed), 'survived' (all passed), 'timeout' or 'error' (nothing collected, a crash), and
    pytest's last line."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    out = (proc.stdout + proc.stderr).strip().splitlines()
    tail = out[-1] if out else ""
    return {0: "survived", 1: "killed"}.get(proc.returncode, "error"), tail


def run_one(m: Mutant, timeout: float, baseline: bool) -> tuple[str, float, str, str]:
    """Apply the mutant, run its selections until one kills it, restore the file whatever happens. Returns the
    status, seconds, pytest's last line and the selection that decided (the last one run)."""
    path = ROOT / PKG / m.file
    original = path.read_text()
    if original.count(m.old) != 1:
        return "error", 0.0, f"the snippet occurs {original.count(m.old)} times in {m.file}", ""
    start = time.monotonic()
    status, tail, args = "survived", "", ()
    try:
        path.write_text(original.replace(m.old, m.new))
        pyc_clear(path)
        for args in m.selections(baseline):
            status, tail = pytest_run(args, timeout)
            if status != "survived":
                break
    finally:
        path.write_text(original)
        pyc_clear(path)
    return status, time.monotonic() - start, tail, " ".join(args)


def library_clean() -> bool:
    return subprocess.run(["git", "diff", "--quiet", "--", PKG], cwd=ROOT).returncode == 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[], help="run only this mutant (repeatable)")
    p.add_argument("--list", action="store_true", help="list the mutants and exit")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per pytest run (default: %(default)s)")
    p.add_argument("--baseline", action="store_true", help="run only the tests that existed before this analysis "
                   "(not the tests written against the mutants), by default for the mutants that got new tests: "
                   "shows that they survived the earlier tests")
    args = p.parse_args(argv)
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names), "duplicate mutant names"
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"error: unknown mutant(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if m.name in args.only or not args.only and (m.added or not args.baseline)]
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.file:26} " + " ; ".join(" ".join(a) for a in m.selections(args.baseline)))
        return 0
    if not library_clean():
        print(f"error: {PKG}/ has uncommitted changes; commit or stash them first (the run restores files to "
              "their committed text and checks that at the end)", file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    lines = []
    for m in chosen:
        status, secs, tail, by = run_one(m, args.timeout, args.baseline)
        counts[status] = counts.get(status, 0) + 1
        note = " (equivalent)" if status == "survived" and m.name in EQUIVALENT else ""
        lines.append(f"| {m.name} | {m.file} | {m.what} | {status}{note} | `{by}` | {secs:.0f} s |")
        print(f"{status:9} {secs:5.0f}s  {m.name}: {tail}", flush=True)
    clean = library_clean()
    killed = counts.get("killed", 0)
    equivalent = [m.name for m in chosen if m.name in EQUIVALENT]
    print(f"\nkilled {killed} / {len(chosen)}; " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f"; equivalent: {', '.join(equivalent) or 'none'}")
    print("| mutant | file | bug | result | tests run last | time |\n|---|---|---|---|---|---|")
    print("\n".join(lines))
    if not clean:
        print(f"error: {PKG}/ differs from its committed text after the run", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
