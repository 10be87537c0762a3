"""``python -m robustbench_mix.report RESULTS``: one self-contained page per results directory.

Writes ``report.md`` (images linked beside it) and ``report.html`` (images embedded), with the summary,
the paper-shaped tables the directory holds, the claims verdicts and the plots. The suite writes it at
the end of every run.
"""

from __future__ import annotations

import argparse
import base64
import html
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .claims import check_all, to_markdown  # noqa: E402
from .errors import UsageError  # noqa: E402
from .plots import label, save  # noqa: E402
from .results import ResultsError, atomic_write_text, load_results, summarize, summary_markdown  # noqa: E402

TABLE_FILES = ("table2.md", "table3.md", "robust_accuracy.md", "corruptions.md")


def calibration_plot(summary, path: Path) -> Path | None:
    """ECE and NLL of every configuration (clean test set): mixup's effect on calibration at a glance."""
    if "test ece mean" not in summary:
        return None
    labels = [label(r).replace(", ", "\n") for _, r in summary.iterrows()]
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.3 * len(labels)), 3.4))
    for ax, col, title in ((axes[0], "test ece", "expected calibration error (%)"), (axes[1], "test nll", "NLL")):
        scale = 100 if col.endswith("ece") else 1
        ax.bar(range(len(labels)), summary[f"{col} mean"] * scale,
               yerr=summary[f"{col} std"].fillna(0) * scale, color=[f"C{i % 10}" for i in range(len(labels))])
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save(fig, path)


def build(results_dir: Path) -> tuple[str, list[Path]]:
    df = load_results(results_dir)
    summary = summarize(df)
    calibration_plot(summary, results_dir / "calibration.png")
    parts = [f"# robustbench_mix report: {results_dir.name}", ""]
    presets = sorted(set(df["preset"]))
    cmd = df["command"].iloc[-1]
    parts += [f"Preset(s): {', '.join(presets)}. {df['run_id'].nunique()} runs; torch {df['torch'].iloc[0]}; "
              f"device {df['device'].iloc[0]}; git {df['git_rev'].iloc[0]}.", "",
              f"Reproduce with: `{cmd}`", "", "## Summary (final epoch, mean ± std over seeds)", "",
              "Accuracies, memorized fraction and ECE in %; epsilons in /255.", "", summary_markdown(summary)]
    for name in TABLE_FILES:
        p = results_dir / name
        if p.exists():
            parts += [re.sub(r"^## ", "## ", p.read_text()), ""]
    relax = () if set(df["dataset"]) & {"cifar10"} else ("dataset", "model")
    claims = check_all(df, relax)
    ran = claims[claims["verdict"] != "not run"]
    parts += ["## The paper's claims", "",
              "Verdicts: `reproduced` only in the paper's setting for the claim (data set, model and recipe), "
              "with the 95% interval of B − A clear of zero in the claimed direction and both numbers within "
              "tolerance of the paper's; `direction only` when the interval holds the direction on another "
              "setting or with other numbers; `inconclusive` when the interval straddles zero; `1 seed` when a "
              "side has one run (no interval, no verdict).", ""]
    if relax:
        parts += ["These runs are not on CIFAR-10 / PreAct ResNet-18, so only the directions of the claims are "
                  "checked (`--relax dataset,model`).", ""]
    parts += [to_markdown(ran) if len(ran) else "None of the claims' runs are in this directory.", "",
              f"Not run here: {', '.join(claims[claims['verdict'] == 'not run']['claim'])}." if len(ran) < len(claims)
              else "", ""]
    images = [p for p in sorted(results_dir.glob("*.png"))]
    if images:
        parts += ["## Plots", ""]
        parts += [f"![{p.stem}]({p.name})\n" for p in images]
    return "\n".join(parts) + "\n", images


def markdown_to_html(md: str, base: Path, title: str) -> str:
    """Enough Markdown for our own pages: headings, tables, images (embedded), code and paragraphs."""
    out, table = [], []

    def inline(t: str) -> str:
        t = html.escape(t, quote=False)
        t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
        return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)

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


def write_report(results_dir: Path) -> tuple[Path, Path]:
    md, _ = build(results_dir)
    atomic_write_text(results_dir / "report.md", md)
    page = markdown_to_html(md, results_dir, f"robustbench_mix: {results_dir.name}")
    atomic_write_text(results_dir / "report.html", page)
    return results_dir / "report.md", results_dir / "report.html"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m robustbench_mix.report", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="results directories (each gets its own report)")
    args = p.parse_args(argv)
    try:
        for r in args.results:
            d = Path(r)
            if not d.is_dir():
                raise UsageError(f"{r} is not a results directory")
            md, page = write_report(d)
            print(f"wrote {md} and {page}")
    except (ResultsError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
