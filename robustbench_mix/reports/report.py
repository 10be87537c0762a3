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
from pathlib import Path

import pandas as pd

from robustbench_mix.core.atomic import atomic_write_text
from robustbench_mix.experiment.grids import SURROGATE_SUFFIX
from robustbench_mix.reports.claims import check_all, section
from robustbench_mix.reports.plots import FIGURES, INTERVAL
from robustbench_mix.reports.tables import TABLES, tables_for
from robustbench_mix.store.load import load_results
from robustbench_mix.store.schema import adversarial
from robustbench_mix.store.summary import configuration_key, last_epoch, subset_note, summarize, summary_markdown

# what each table shows, for its caption (the table's own text says how it is computed)
TABLE_CAPTIONS = {
    "robust": "Robust accuracy (%) on the test set against epsilon (/255; L2 attacks: columns L2=radius, the L2 "
              "norm in [0, 1] pixel space) per configuration and attack, mean over seeds; 0/255 is the white-box "
              "attacks' clean reference, and the largest column the gradient-masking "
              "check (PGD there must break the model)",
    "corruptions": "Accuracy (%) on the test set under each common corruption, mean over severities 1-5 and seeds",
    "table2": "The paper's Table 2 layout: test and training error (%) with corrupted labels, mean ± std over seeds",
    "table3": "The paper's Table 3 layout: test error (%) under white-box and black-box attacks, mean ± std over seeds",
}


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


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
    return (f"Data set {_list(sorted(d['dataset'].unique()))}; model {_list(sorted(d['model'].unique()))}; "
            f"{len(runs)} runs, seeds {_list(seeds)} ({n} per configuration){attacked}; accuracies, ECE and "
            "memorized in %, epsilons in /255 (L2 radii as L2=r).")


def build(results_dir: Path, relax: tuple[str, ...] = ()) -> tuple[str, list[Path]]:
    """The report's Markdown, and the PNGs made for it (written into ``results_dir`` with the tables)."""
    df = load_results(results_dir)
    ctx = context(df)
    parts = [f"# robustbench_mix report: {results_dir.name}", ""]
    presets = sorted(set(df["preset"]))
    cmd = df["command"].iloc[-1]
    parts += [f"Preset(s): {', '.join(presets)}. {df['run_id'].nunique()} runs; torch {df['torch'].iloc[0]}; "
              f"device {df['device'].iloc[0]}; git {df['git_rev'].iloc[0]}.", "",
              f"Reproduce with: `{cmd}`", "", "## Summary (final epoch, mean ± std over seeds)", "",
              summary_markdown(summarize(df)) + (f"\n{subset_note(df)}\n" if subset_note(df) else ""),
              f"*Table: clean and robust accuracy, calibration and memorization per configuration. {ctx}*", ""]
    for name in tables_for(df):
        md = TABLES.get(name)(df, results_dir)
        if md:
            parts += [md, f"*Table: {TABLE_CAPTIONS.get(name, name)}. {ctx}*", ""]
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
