"""The presets as data: one Suite each (the paper's recipes, the CPU-sized grids on digits and CIFAR-10)."""

from __future__ import annotations

from dataclasses import replace

from robustbench_mix.core.errors import UsageError
from robustbench_mix.core.registry import unknown
from robustbench_mix.experiment.experiment import Experiment
from robustbench_mix.experiment.grids import Suite, Variant


def _paper_cifar(dataset: str) -> Experiment:
    # The paper's CIFAR recipe (Zhang et al. 2018, Sec. 3.2 / the authors' code): PreAct ResNet-18,
    # 200 epochs, batch 128, lr 0.1 divided by 10 at epochs 100 and 150, weight decay 1e-4.
    return Experiment(dataset=dataset, model="preact_resnet18", epochs=200, batch_size=128, lr=0.1,
                      weight_decay=1e-4, schedule="step", attacks=("fgsm", "pgd"), eps=(2.0, 8.0),
                      attack_samples=0)


ERM_MIXUP = (Variant("erm"), Variant("mixup", alpha=1.0))


def _table2_variants(alpha: float, p_drop: float, mix_drop: tuple[float, float]) -> tuple[Variant, ...]:
    return (Variant("erm"), Variant("erm", dropout=p_drop), Variant("mixup", alpha=alpha),
            Variant("mixup", alpha=mix_drop[0], dropout=mix_drop[1]))


# The paper's Table 2 columns per corruption rate: ERM, ERM + dropout (p=0.7 at 20%, 0.8 at 50/80%),
# mixup (alpha=8 at 20%, 32 at 50/80%) and mixup + dropout. The issue that specified this preset gives no
# parameters for mixup + dropout; (alpha=4, p=0.1) at 20% and (alpha=8, p=0.3) at 50/80% are our reading of
# the paper's table labels and should be checked against the paper before citing.
TABLE2_BY_NOISE = (
    (0.2, _table2_variants(8.0, 0.7, (4.0, 0.1))),
    (0.5, _table2_variants(32.0, 0.8, (8.0, 0.3))),
    (0.8, _table2_variants(32.0, 0.8, (8.0, 0.3))),
)
# The CPU presets on real CIFAR-10 images: ERM and mixup at the paper's alpha for each rate (no dropout columns:
# they would double the CPU time)
CPU_TABLE2_BY_NOISE = tuple((p, vs[::2]) for p, vs in TABLE2_BY_NOISE if p in (0.2, 0.5))
TABLE3_ATTACKS = ("fgsm", "ifgsm", "pgd", "pgd_margin")
# Every method at the parameter its paper uses on CIFAR: mixup alpha=1 (Zhang et al.), manifold mixup alpha=2
# (Verma et al.), CutMix alpha=1 with probability 0.5 (Yun et al.), label smoothing epsilon=0.1 (Szegedy et al.);
# each is also that method's default (Method.default, the options' defaults), which a test holds them to.
ALL_METHODS = (Variant("erm"), Variant("mixup", alpha=1.0), Variant("manifold_mixup", alpha=2.0),
               Variant("cutmix", alpha=1.0), Variant("label_smoothing", alpha=0.1))

# The robust baselines: ERM and mixup against adversarial training, L-infinity and L2, white-box,
# black-box (an ERM surrogate) and AutoAttack. Each adversarial method trains at the largest L-infinity radius
# evaluated, the radius its robustness is read at.
ROBUST_ATTACKS = ("fgsm", "pgd", "autoattack", "fgm_l2", "pgd_l2", "autoattack_l2")
# on a shared 2-core CPU one radius per norm and no L2 AutoAttack: AutoAttack costs minutes per radius there
ROBUST_CPU_ATTACKS = ("fgsm", "pgd", "autoattack", "fgm_l2", "pgd_l2")
# digits (8x8, CPU): 32/255, 5 PGD steps of 8/255 (the references' 10 steps of eps/4, halved for CPU time);
# mixup_at with one lambda for both halves (pairs=one), the form its committed results computed
ROBUST_CPU_AT = "eps=32:steps=5:step_size=8"
ROBUST_CPU = (Variant("erm"), Variant("mixup", alpha=1.0), Variant("pgd_at", options=ROBUST_CPU_AT),
              Variant("trades", alpha=6.0, options=ROBUST_CPU_AT),
              Variant("mixup_at", alpha=1.0, options=ROBUST_CPU_AT + ":pairs=one"))
# CIFAR-10 (GPU): each method's reference setting, 8/255 (PGD-AT: 10 steps of 2/255; TRADES: beta 6, 10 steps
# of 0.007; mixup + AT: PGD-AT's adversary, alpha 1)
ROBUST_CIFAR = (Variant("erm"), Variant("mixup", alpha=1.0), Variant("pgd_at"), Variant("trades", alpha=6.0),
                Variant("mixup_at", alpha=1.0))

PRESETS: dict[str, Suite] = {
    s.name: s
    for s in [
        Suite("quick", "digits, small CNN, ERM vs mixup (alpha=1), label noise 0 and 0.4; no download, no GPU needed",
              Experiment(dataset="digits", model="cnn", epochs=30, batch_size=64, lr=0.05,
                         weight_decay=5e-4, schedule="cosine", eps=(2.0, 8.0, 16.0), eval_every=5),
              ERM_MIXUP, noise=(0.0, 0.4)),
        Suite("cifar10", "the paper's CIFAR-10 generalization recipe (PreAct ResNet-18, 200 epochs)",
              _paper_cifar("cifar10"), ERM_MIXUP),
        Suite("cifar100", "the paper's CIFAR-100 generalization recipe (PreAct ResNet-18, 200 epochs)",
              _paper_cifar("cifar100"), ERM_MIXUP),
        Suite("paper-table2", "the paper's Table 2: CIFAR-10 with 20/50/80% corrupted labels, PreAct ResNet-18, "
              "200 epochs, per-epoch curves",
              replace(_paper_cifar("cifar10"), attacks=(), eval_every=1, val_fraction=0.1),
              (), noise=(0.2, 0.5, 0.8), by_noise=TABLE2_BY_NOISE, tables=("table2",)),
        Suite("table2-short", "Table 2 on a one-GPU budget: 60 epochs, batch 256, lr 0.2, same step shape",
              replace(_paper_cifar("cifar10"), attacks=(), eval_every=1, val_fraction=0.1, epochs=60,
                      batch_size=256, lr=0.2),
              (), noise=(0.2, 0.5, 0.8), by_noise=TABLE2_BY_NOISE, tables=("table2",)),
        Suite("table2-cpu", "Table 2 on digits (CPU): small CNN, 20/50/80% corrupted labels, per-epoch curves",
              Experiment(dataset="digits", model="cnn", epochs=40, batch_size=64, lr=0.05, weight_decay=5e-4,
                         schedule="step", attacks=(), eval_every=1, val_fraction=0.1),
              (), noise=(0.2, 0.5, 0.8), seeds=(0, 1, 2), by_noise=TABLE2_BY_NOISE, tables=("table2",)),
        Suite("paper-table3", "Table 3's protocol on CIFAR-10 (the paper's Table 3 is ImageNet-2012, ResNet-101): "
              "PreAct ResNet-18, ERM vs mixup (alpha=1), FGSM and I-FGSM at 4/255 and 8/255, white-box and "
              "black-box (ERM surrogate, seed 100)",
              replace(_paper_cifar("cifar10"), attacks=TABLE3_ATTACKS, eps=(4.0, 8.0), surrogate_seed=100,
                      attack_samples=0),
              ERM_MIXUP, tables=("table3", "robust")),
        Suite("methods-cpu", "every method on digits (CPU): ERM, mixup (alpha=1), manifold mixup (alpha=2), CutMix "
              "(alpha=1, prob=0.5), label smoothing (epsilon=0.1); clean and 40% corrupted labels; FGSM and PGD "
              "white-box and black-box (ERM surrogate, seed 100); 3 seeds",
              Experiment(dataset="digits", model="cnn", epochs=30, batch_size=64, lr=0.05, weight_decay=5e-4,
                         schedule="cosine", eps=(2.0, 8.0, 16.0), surrogate_seed=100),
              ALL_METHODS, noise=(0.0, 0.4), seeds=(0, 1, 2)),
        Suite("methods-cifar10", "every method on CIFAR-10 (GPU): PreAct ResNet-18 with the paper's CIFAR recipe, the "
              "five methods of methods-cpu, clean and 40% corrupted labels, FGSM, I-FGSM and PGD at 4 and 8/255, "
              "white-box and black-box (ERM surrogate, seed 100); 3 seeds",
              replace(_paper_cifar("cifar10"), attacks=("fgsm", "ifgsm", "pgd"), eps=(4.0, 8.0), surrogate_seed=100),
              ALL_METHODS, noise=(0.0, 0.4), seeds=(0, 1, 2)),
        Suite("cifar10-cpu-table2", "Table 2 on real CIFAR-10 images on the CPU: a class-stratified 4,000 training "
              "images, the CPU CNN (cifar_cnn), 15 epochs; ERM vs mixup (the paper's alpha: 8 at 20%, 32 at 50% "
              "corrupted labels), per-epoch curves; 3 seeds",
              Experiment(dataset="cifar10", model="cifar_cnn", train_samples=4000, epochs=15, batch_size=128, lr=0.1,
                         weight_decay=5e-4, schedule="cosine", attacks=(), eval_every=1, val_fraction=0.1),
              (), noise=(0.2, 0.5), seeds=(0, 1, 2), by_noise=CPU_TABLE2_BY_NOISE, tables=("table2",)),
        Suite("cifar10-cpu-table3", "Table 3's protocol on real CIFAR-10 images on the CPU: a class-stratified 10,000 "
              "training images, the CPU CNN (cifar_cnn), 12 epochs; ERM vs mixup (alpha=1), FGSM/I-FGSM/PGD at 2 "
              "and 8/255 white-box and black-box (ERM surrogate, seed 100) on a class-stratified 500 test images; "
              "3 seeds",
              Experiment(dataset="cifar10", model="cifar_cnn", train_samples=10000, epochs=12, batch_size=128, lr=0.1,
                         weight_decay=5e-4, schedule="cosine", attacks=("fgsm", "ifgsm", "pgd"), eps=(2.0, 8.0),
                         surrogate_seed=100, attack_samples=500),
              ERM_MIXUP, seeds=(0, 1, 2), tables=("table3", "robust")),
        Suite("robust-cpu", "Robust baselines on digits (CPU): ERM, mixup, PGD-AT, TRADES and mixup + AT trained at "
              "32/255; FGSM/PGD/AutoAttack at 32/255 and FGM/PGD at L2 1.0, white-box and black-box (ERM surrogate, "
              "seed 100), PGD with 2 restarts, on a class-stratified 100 test digits; 3 seeds",
              Experiment(dataset="digits", model="cnn", epochs=15, batch_size=64, lr=0.05, weight_decay=5e-4,
                         schedule="cosine", attacks=ROBUST_CPU_ATTACKS, eps=(32.0,), eps_l2=(1.0,),
                         surrogate_seed=100, attack_restarts=2, check_eps=128.0, attack_samples=100),
              ROBUST_CPU, seeds=(0, 1, 2), tables=("robust",)),
        Suite("robust-cifar10", "Robust baselines on CIFAR-10 with the paper's recipe (GPU; not run yet): ERM, mixup, "
              "PGD-AT, TRADES and mixup + AT at their references' 8/255; FGSM/PGD/AutoAttack in L-infinity (8/255) and "
              "L2 (0.5, RobustBench's radius) on all 10,000 test images, white-box and black-box",
              replace(_paper_cifar("cifar10"), attacks=ROBUST_ATTACKS, eps=(8.0,), eps_l2=(0.5,), surrogate_seed=100),
              ROBUST_CIFAR, tables=("robust",)),
        Suite("table3-cpu", "Table 3's protocol on digits (CPU): ERM vs mixup, FGSM/I-FGSM/PGD white-box and "
              "black-box",
              Experiment(dataset="digits", model="cnn", epochs=30, batch_size=64, lr=0.05, weight_decay=5e-4,
                         schedule="cosine", attacks=TABLE3_ATTACKS, eps=(4.0, 8.0, 16.0), surrogate_seed=100),
              ERM_MIXUP, seeds=(0, 1, 2), tables=("table3", "robust")),
    ]
}


def get_preset(name: str) -> Suite:
    if name not in PRESETS:
        raise UsageError(unknown("preset", name, sorted(PRESETS)))
    return PRESETS[name]
