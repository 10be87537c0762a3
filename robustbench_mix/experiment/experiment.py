"""Experiments (frozen dataclasses with a stable hash), validation with clear errors, suites and presets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields

SCHEDULES = ("step", "cosine", "constant")
# Fields that say where or under which label a run happens, not what it computes: not part of the run id.
NOT_HASHED = {"preset", "device"}
# Fields added after results were first published, with their default: they enter the hash only when set to
# something else, so adding a field never changes the id (and orphans the results) of an existing run.
ADDED_FIELDS = {"attack_precision": "fp32", "corruptions": (), "method_options": "", "eval_seed": None, "weights": "",
                "train_samples": 0, "eps_l2": (), "plugins": ""}
# The same for a method's options (Experiment.method_options): an option added to a method whose runs were already
# published, with the value that computes as those runs did, is left out of the hash at that value. An option
# without such a value came with a change of the method's computation (CutMix's prob came with the reference's
# box), so it is always hashed and the method's runs got new ids.
ADDED_OPTIONS = {"manifold_mixup": {"loss": "ce"}, "mixup_at": {"pairs": "one"}}
PRECISIONS = ("fp32", "bf16")
# Since 0.4.0 a run that attacks fewer than all test images attacks a class-stratified sample (data.attack_subset),
# not the first N: such runs hash this rule too, so they never share an id with a first-N run's numbers.
SUBSET_RULE = "stratified-v1"
# An attack whose computation changed after runs with it were published: its rule is hashed into the id of every
# run that uses it, so those runs never share an id with numbers of the earlier computation.
ATTACK_RULES = {"fgm_l2": "exact-unit-v1"}
SEED_LIMIT = 2**32


@dataclass(frozen=True)
class Experiment:
    """One training run and its evaluation. Epsilons and step sizes are in /255 units here (8.0 is 8/255), as on
    the command line; the Python API takes fractions (8/255) and results write both (``eps``, ``eps_255``)."""

    preset: str = "custom"
    dataset: str = "digits"
    model: str = "cnn"
    method: str = "erm"
    alpha: float = 0.0
    dropout: float = 0.0
    noise: float = 0.0
    seed: int = 0
    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "step"
    val_fraction: float = 0.0
    train_samples: int = 0  # a class-stratified N of the training images (data.prepare), the same for all seeds; 0: all
    attacks: tuple[str, ...] = ("fgsm", "pgd")
    eps: tuple[float, ...] = (2.0, 8.0)
    # the L2 attacks' radii (pgd_l2, fgm_l2, autoattack_l2): plain L2 norms in [0, 1] pixel space, not /255
    eps_l2: tuple[float, ...] = ()
    attack_steps: int = 10
    attack_step_size: float | None = None  # /255; None means 2.5 * eps / steps (Madry et al.)
    attack_samples: int = 0  # a class-stratified N of the test images are attacked (data.attack_subset); 0 = all
    eval_every: int = 0  # clean/memorization curve every N epochs; 0 = only at the end
    attack_restarts: int = 1  # random-start attacks: an example counts as robust only if it survives all
    check_eps: float = 64.0  # /255; PGD here must break the model (gradient-masking check); 0 = skip
    surrogate_seed: int | None = None  # black-box: transfer attacks from an ERM twin trained with this seed
    attack_precision: str = "fp32"  # bf16 runs attacks and their evaluation under bf16 autocast
    corruptions: tuple[str, ...] = ()  # computed common corruptions at severities 1-5 (corruptions.py)
    # the method's named options besides alpha, all spelled out ('prob=0.5'; '' for methods without any)
    method_options: str = ""
    # Evaluations of saved weights (the checkpoint command). ``eval_seed``: the seed of the attacks' random
    # starts and the computed corruptions when it is not the training seed; it is a field of its own (in the id
    # and the configuration) so that evaluations of one model never pose as training seeds. ``weights``: where
    # the evaluated weights come from when the suite did not train them in this run: "checkpoint" (the run's
    # suite checkpoint, its config read from inside it) or "sha256:<16 hex>" (a plain state_dict, which has no
    # config: its tensors are its identity, so two files never share a run id).
    eval_seed: int | None = None
    weights: str = ""
    device: str = "auto"
    # the plugins' entries the run uses, 'kind:name=module@fingerprint;...' (registry.Origin; empty for a run of
    # built-in entries only): filled in from the registries, so the fingerprints are in the run id, and kept as
    # recorded for an entry whose plugin is not loaded (a row read as data)
    plugins: str = ""

    def __post_init__(self):
        from robustbench_mix.methods import canonical_options

        # one spelling per configuration, whatever was given ('' or 'prob=0.5'): equal runs, equal ids
        object.__setattr__(self, "method_options", canonical_options(self.method, self.method_options))
        # -0.0 equals 0.0 but hashes as other text: a run given -0 (alpha, noise, eps, ...) is the run at 0
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and v == 0:
                object.__setattr__(self, f.name, 0.0)
            elif isinstance(v, tuple) and any(isinstance(x, float) and x == 0 for x in v):
                object.__setattr__(self, f.name, tuple(0.0 if isinstance(x, float) and x == 0 else x for x in v))
        object.__setattr__(self, "plugins", plugin_record(self))

    @property
    def run_id(self) -> str:
        return config_hash(self)

    @property
    def evaluation_seed(self) -> int:
        """The seed of the attacks' random starts and the computed corruptions."""
        return self.seed if self.eval_seed is None else self.eval_seed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in known}
        if "method_options" not in d:  # recorded before methods had options
            d["method_options"] = legacy_options(d.get("method", "erm"))
        else:  # recorded before one of its options came: the value that computes as that run did
            d["method_options"] = with_added_options(d.get("method", "erm"), d["method_options"])
        return cls(**d)


@dataclass(frozen=True)
class RunOptions:
    """How a run is executed, not what it computes (none of it is in the run id): checkpoint interval,
    evaluation batch size, progress bars and the speed paths (torch.compile, CUDA graphs; see speed.py; the CPU's
    memory layout)."""

    checkpoint_every: int = 1
    eval_batch_size: int = 1000
    progress: bool = True
    compile: bool | str = False  # a string is torch.compile's mode
    cuda_graphs: bool | str = False  # False, True/'model' or 'step'
    cpu_channels_last: bool = False  # models and images in channels_last on the CPU too (models.channels_last)


DEFAULT_OPTIONS = RunOptions()


def plugin_entries(text: str) -> dict[str, str]:
    """'method:m=mod@fp;model:n=mod@fp' -> {'method:m': 'mod@fp', 'model:n': 'mod@fp'}."""
    return dict(p.partition("=")[::2] for p in text.split(";") if p)


def plugin_record(exp: Experiment, keep_unknown: bool = True) -> str:
    """The run's plugin entries (see ``Experiment.plugins``): each entry the run names (data set, model, method,
    attacks, corruptions) that a loaded plugin registered, with its origin; an entry that no registry knows keeps what
    ``exp.plugins`` recorded for it (unless ``keep_unknown`` is False: what this process has, for a Ray worker's
    check); built-in entries are not listed."""
    from robustbench_mix.attacks.base import ATTACKS
    from robustbench_mix.corruptions.base import CORRUPTIONS
    from robustbench_mix.data.base import DATASETS, split_spec
    from robustbench_mix.methods import METHODS
    from robustbench_mix.models.base import MODELS

    recorded = plugin_entries(exp.plugins)
    used = [(DATASETS, split_spec(exp.dataset)[0]), (MODELS, exp.model), (METHODS, exp.method),
            *((ATTACKS, a) for a in exp.attacks), *((CORRUPTIONS, c) for c in exp.corruptions)]
    out = {}
    for registry, name in used:
        key, origin = f"{registry.kind}:{name}", registry.origin(name)
        if origin is not None:
            out[key] = str(origin)
        elif keep_unknown and name not in registry and key in recorded:
            out[key] = recorded[key]
    return ";".join(f"{k}={v}" for k, v in sorted(out.items()))


def legacy_options(method: str) -> str:
    """The options a run recorded before its method had options computed with: the ADDED_OPTIONS values, or
    methods.LEGACY where the method's computation has changed since (its old runs stay apart from new ones)."""
    from robustbench_mix.methods import LEGACY, METHODS

    if method not in METHODS:
        return ""
    added = ADDED_OPTIONS.get(method, {})
    names = [o.name for o in METHODS.get(method).options]
    return LEGACY if any(n not in added for n in names) else ":".join(f"{n}={added[n]}" for n in names)


def with_added_options(method: str, text: str) -> str:
    """A recorded ``text`` with each ADDED_OPTIONS option it lacks at its added value. Every run since an option
    came records it in full (``canonical_options``), so a record without it predates it: filled in with the
    method's default instead, it would name another computation (mixup_at's default is pairs=two, its earlier
    runs computed pairs=one)."""
    from robustbench_mix.methods import LEGACY

    added = ADDED_OPTIONS.get(method, {})
    if not added or text == LEGACY:
        return text
    given = {p.partition("=")[0] for p in text.split(":") if p}
    return ":".join([p for p in text.split(":") if p] + [f"{k}={v}" for k, v in added.items() if k not in given])


def hashed_options(method: str, text: str) -> str:
    """``text`` without the options at their ADDED_OPTIONS value."""
    added = ADDED_OPTIONS.get(method, {})
    return ":".join(p for p in text.split(":") if p and p.partition("=")[::2] not in added.items())


def config_hash(exp: Experiment) -> str:
    """Stable across processes and Python versions: sha256 of the canonical JSON of the hashed fields."""
    d = dict(exp.to_dict(), method_options=hashed_options(exp.method, exp.method_options))
    d = {k: v for k, v in d.items() if k not in NOT_HASHED and not (k in ADDED_FIELDS and v == ADDED_FIELDS[k])}
    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
    if exp.attack_samples:
        d["attack_subset"] = SUBSET_RULE
    rules = {a: ATTACK_RULES[a] for a in exp.attacks if a in ATTACK_RULES}
    if rules:
        d["attack_rules"] = rules
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:10]
