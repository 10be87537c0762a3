"""``python -m robustbench_mix.report RESULTS [--relax dataset,model]``: one self-contained page per results directory.

Everything is rebuilt from the directory's ``runs.csv`` alone (the suite's, the checkpoint command's, the API's
rows, or a copied results directory): the summary, every table the suite makes for those runs (``tables``) and
every plot (``plots``), each with a caption saying what it shows (data set, model, seeds, images attacked,
units), and the claims' verdicts as the claims command gives them for the same flags. Writes ``report.md``
(images linked beside it) and ``report.html`` (images embedded). The suite writes it at the end of every run.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
from pathlib import Path

import pandas as pd

from robustbench_mix.attacks.base import attack_norm
from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.core.units import Norm
from robustbench_mix.data.base import short_name
from robustbench_mix.evaluation.metrics import CHECK_PREFIX, NA_PREFIX
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.methods import run_label
from robustbench_mix.reports.claims import check_all, section
from robustbench_mix.reports.plots import FIGURES, INTERVAL
from robustbench_mix.reports.tables import TABLES, tables_for
from robustbench_mix.store.load import load_results
from robustbench_mix.store.schema import adversarial
from robustbench_mix.store.summary import configuration_key, last_epoch, subset_note, summarize, summary_markdown

# what each table shows, for its caption (the table's own text says how it is computed)
TABLE_CAPTIONS = {
    "robust": "Robust accuracy (%) on the test set per configuration, attack and epsilon (/255{l2}), mean ± std "
              "over seeds, one table per threat model; PGD at the largest L-infinity epsilon is the gradient-masking "
              "check (it must break the model); epsilon 0 (each white-box attack's clean reference) is in "
              "robust_accuracy.csv",
    "corruptions": "Accuracy (%) on the test set under each common corruption, mean over severities 1-5 and seeds",
    "table2": "The paper's Table 2 layout: test and training error (%) with corrupted labels, mean ± std over seeds",
    "table3": "The paper's Table 3 layout: test error (%) under white-box and black-box attacks, mean ± std over seeds",
}


L2_NOTE = "; L2 attacks: columns L2=radius, the L2 norm in [0, 1] pixel space"
# the summary's raw column names, as a reader calls them
SUMMARY_TITLES = {"train_corrupted memorized": "memorized (corrupted training labels)",
                  "train_corrupted acc": "train acc on corrupted labels (true labels)",
                  "train noise_realized": "labels changed", "surrogate_seed": "black-box surrogate seed"}


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


def has_l2(df: pd.DataFrame) -> bool:
    """Whether any L2 attack ran: captions speak of L2 radii only then."""
    return bool(df["attack"].map(attack_norm).eq(Norm.L2).any())


def readable_summary(df: pd.DataFrame) -> str:
    """The summary table with the method as its title (``TRADES (β=6, eps=32, steps=5, step_size=8)``, not ``trades``,
    ``alpha`` 6 and ``eps=32.0:steps=5.0:...``) and the metric columns named for a reader."""
    summary = summarize(df)
    if "method" in summary and len(summary):
        cols = [c for c in ("alpha", "dropout", "method_options") if c in summary]
        get = {c: (summary[c] if c in summary else pd.Series([0.0 if c != "method_options" else ""] * len(summary)))
               for c in ("alpha", "dropout", "method_options")}
        summary = summary.assign(method=[run_label(m, a, d, o if isinstance(o, str) else "") for m, a, d, o in zip(
            summary["method"], get["alpha"], get["dropout"], get["method_options"], strict=True)]).drop(columns=cols)
    md = summary_markdown(summary)
    head, rest = md.split("\n", 1)
    cells = [c.strip() for c in head.strip("|").split("|")]
    for raw, title in SUMMARY_TITLES.items():
        cells = [c.replace(raw, title) if c.startswith(raw) else c for c in cells]
    cells = [f"robust {c.removeprefix('worst_l2 ').removeprefix('worst ')} (worst case)" if c.startswith("worst")
             else c for c in cells]
    return "| " + " | ".join(cells) + " |\n" + rest


def check_kinds(df: pd.DataFrame) -> pd.DataFrame:
    """Per kind of sanity check (``in_ball``, ``positive:autoattack_le_pgd``, ...) at the runs' final epoch: how many
    passed, failed and had nothing to compare."""
    d = last_epoch(df)
    d = d[d["metric"].str.startswith((CHECK_PREFIX, NA_PREFIX))]
    if d.empty:
        return pd.DataFrame(columns=["check", "passed", "failed", "nothing to compare"])
    parts = d["metric"].str.split(":")
    kind = [":".join(p[1:3]) if p[1] == "positive" else p[1] for p in parts]
    d = d.assign(kind=kind, na=d["metric"].str.startswith(NA_PREFIX))
    g = d.groupby("kind", sort=False)
    out = pd.DataFrame({"passed": g.apply(lambda t: int(((t["value"] >= 0.5) & ~t["na"]).sum())),
                        "failed": g.apply(lambda t: int(((t["value"] < 0.5) & ~t["na"]).sum())),
                        "nothing to compare": g["na"].sum().astype(int)})
    return out.rename_axis("check").reset_index()


def checks_markdown(df: pd.DataFrame) -> str:
    """Each kind of sanity check, passed or failed (what 'checks failed' counts), or "" where none ran."""
    t = check_kinds(df)
    if t.empty:
        return ""
    lines = ["| check | passed | failed | nothing to compare |", "|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in t.itertuples(index=False)]
    return ("Sanity checks of the attacks (each kind over every run, attack and epsilon it applies to; the "
            "positive controls are the `positive:` ones; a failed check flags that run's robust numbers; "
            "docs/protocol.md says what each tests):\n\n" + "\n".join(lines) + "\n")


def _local_path(arg: str, prefix: str = "") -> str:
    """An absolute path of the machine that ran the command as a placeholder that keeps its last part
    (``imagefolder:/tmp/c10/cifar10-jpeg`` -> ``imagefolder:<dir>/cifar10-jpeg``): a reader's data lie elsewhere."""
    path = arg.removeprefix(prefix)
    return f"{prefix}<dir>/{Path(path).name}" if Path(path).is_absolute() else arg


def reproduce_command(cmd: str, results_dir: Path) -> str:
    """The command that made the rows, with ``--out`` pointing at this results directory (where the rows were
    made somewhere else, e.g. a temporary directory, before they were copied here), and the absolute paths of
    ``--dataset imagefolder:`` and ``--data-dir`` as placeholders (the rows' ``command`` column keeps them)."""
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return cmd
    here = Path(results_dir)
    try:
        here = here.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    shown = {}  # index -> the placeholder, shown unquoted (it is to be replaced, not pasted as it is)
    for i, a in enumerate(argv):
        if a == "--out" and i + 1 < len(argv):
            argv[i + 1] = str(here)
        elif a.startswith("--out="):
            argv[i] = f"--out={here}"
        elif i and argv[i - 1] == "--dataset" and a.startswith("imagefolder:"):
            shown[i] = _local_path(a, "imagefolder:")
        elif i and argv[i - 1] == "--data-dir":
            shown[i] = _local_path(a)
    return " ".join(shown[i] if shown.get(i, a) != a else shlex.quote(a) for i, a in enumerate(argv))


def context(df: pd.DataFrame) -> str:
    """What every caption repeats: data set(s), model(s), seeds, images attacked, units."""
    d = df[~df["preset"].str.endswith(SURROGATE_SUFFIX)]
    runs = d.drop_duplicates("run_id")
    per_config = runs.groupby(runs["config"].map(configuration_key))["seed"].nunique()
    n = f"{per_config.min()}" if per_config.min() == per_config.max() else f"{per_config.min()}-{per_config.max()}"
    seeds = sorted(int(s) for s in runs["seed"].unique())
    cfgs = [json.loads(t) for t in runs["config"]]
    samples = sorted({c.get("attack_samples", 0) for c in cfgs if c.get("attacks")})
    stratified = d.loc[adversarial(d), "eval_subset"].str.startswith("stratified:").any()
    # runs.csv files written before 0.4.0 attacked the first N
    rule = "a class-stratified {} of the test images" if stratified else "the first {} test images"
    attacked = "" if not samples else "; attacks on " + " / ".join(
        "every test image" if s == 0 else rule.format(s) for s in samples)
    names = sorted({short_name(x) for x in d["dataset"].unique()})  # a folder's name, never a local path
    return (f"Data set {_list(names)}; model {_list(sorted(d['model'].unique()))}; "
            f"{len(runs)} runs, seeds {_list(seeds)} ({n} per configuration){attacked}; accuracies, ECE and "
            f"memorized in %, epsilons in /255{' (L2 radii as L2=r)' if has_l2(d) else ''}.")


def build(results_dir: Path, relax: tuple[str, ...] = ()) -> tuple[str, list[Path]]:
    """The report's Markdown, and the PNGs made for it (written into ``results_dir`` with the tables)."""
    df = load_results(results_dir)
    df = df.assign(dataset=df["dataset"].map(short_name))  # what the page shows: a folder's name, not its path
    ctx = context(df)
    parts = [f"# robustbench_mix report: {results_dir.name}", ""]
    presets = sorted(set(df["preset"]))
    cmd = df["command"].iloc[-1]
    parts += [f"Preset(s): {', '.join(presets)}. {df['run_id'].nunique()} runs; torch {df['torch'].iloc[0]}; "
              f"device {df['device'].iloc[0]}; git {df['git_rev'].iloc[0]}.", "",
              f"Reproduce with: `{reproduce_command(cmd, results_dir)}`", "",
              "## Summary (final epoch, mean ± std over seeds)", "",
              readable_summary(df) + (f"\n{subset_note(df)}\n" if subset_note(df) else ""),
              f"*Table: clean and robust accuracy, calibration and memorization per configuration. {ctx}*", ""]
    checks = checks_markdown(df)
    if checks:
        parts += [checks]
    l2 = has_l2(df)
    for name in tables_for(df):
        md = TABLES.get(name)(df, results_dir)
        if md:
            caption = TABLE_CAPTIONS.get(name, name).format(l2=L2_NOTE if l2 else "")
            parts += [md, f"*Table: {caption}. {ctx}*", ""]
    images = []
    seeds = last_epoch(df).drop_duplicates("run_id").groupby(df["config"].map(configuration_key))["seed"].nunique()
    spread = INTERVAL if seeds.max() > 1 else "one seed per configuration, so no interval is drawn"
    for name in FIGURES:
        for path, what in FIGURES.get(name)(df, results_dir):
            if not images:
                parts += ["## Plots", ""]
            images.append(path)
            parts += [f"![{path.stem}]({path.name})", "", f"*Figure {len(images)}: {what}; {spread}. {ctx}*", ""]
    parts += ["## The paper's claims", "", section(check_all(df, relax), relax)]
    return "\n".join(parts) + "\n", images


def markdown_to_html(md: str, base: Path, title: str) -> str:
    """Enough Markdown for our own pages: headings, tables, images (embedded), code and paragraphs."""
    out, table = [], []

    def inline(t: str) -> str:
        t = html.escape(t, quote=False)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
        return re.sub(r"(?<![*\w])\*([^*]+)\*(?![*\w])", r"<em>\1</em>", t)

    def flush():
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|(\s*-+\s*\|)+", r.replace("---", "-"))]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0]) + "</tr></thead>"
                       + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
                       + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if m := re.match(r"^(#+) (.*)", line):
            n = len(m.group(1))
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
        elif m := re.match(r"^!\[(.*)\]\((.*)\)", line):
            data = base64.b64encode((base / m.group(2)).read_bytes()).decode()
            out.append(f'<p><img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}"></p>')
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:3px 7px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%}code{background:#f3f3f3;padding:1px 4px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")


def write_report(results_dir: Path, relax: tuple[str, ...] = ()) -> tuple[Path, Path]:
    md, _ = build(results_dir, relax)
    atomic_write_text(results_dir / "report.md", md)
    page = markdown_to_html(md, results_dir, f"robustbench_mix: {results_dir.name}")
    atomic_write_text(results_dir / "report.html", page)
    return results_dir / "report.md", results_dir / "report.html"
