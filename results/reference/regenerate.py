"""Regenerate the committed CPU reference results and the provenance paragraph of their READMEs.

From the repository root, with a clean working tree (the rows record the git revision, '-dirty' otherwise):

    python results/reference/regenerate.py [NAME ...]      # default: all five

Each directory is emptied but for its README.md (its runs/ checkpoints too, so every run trains), the suite
is run into it (timed), and the README's text between the command block and the 'Files:' line is rewritten
from the rows' own provenance.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
COMMANDS = {
    "quick": [],
    "quick-3seeds": ["--seeds", "0,1,2"],
    "table3-cpu": ["--preset", "table3-cpu"],
    "table2-cpu": ["--preset", "table2-cpu"],
    "methods-cpu": ["--preset", "methods-cpu"],
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def regenerate(name: str) -> None:
    out = HERE / name
    for p in out.iterdir():  # everything but the README, the (ignored) checkpoints of an earlier run included
        if p.is_dir():
            shutil.rmtree(p)
        elif p.name != "README.md":
            p.unlink()
    cmd = ["python", "-m", "robustbench_mix.suite", *COMMANDS[name], "--out", f"results/reference/{name}"]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *cmd[1:], "--no-progress"], check=True, cwd=HERE.parents[1],
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    df = pd.read_csv(out / "runs.csv", dtype=str, keep_default_na=False)
    files = ", ".join(f"`{p.name}`" for p in sorted(out.iterdir())
                      if p.is_file() and p.name != "README.md" and not p.name.startswith("."))
    text = (f"```\n{shlex.join(cmd)}\n```\n\n"
            f"on {', '.join(sorted(set(df['device'])))} (a virtual machine with {os.cpu_count()} {cpu_model()} cores, "
            "torch CPU kernels "
            f"{torch.backends.cpu.get_cpu_capability()}, no GPU), torch {', '.join(sorted(set(df['torch'])))}, git "
            f"revision {', '.join(sorted(set(df['git_rev'])))}, in {seconds:.1f} s wall time "
            f"({df['run_id'].nunique()} runs). Rerunning the command on the same kind of machine with the same "
            "thread count and torch gives the same `runs.csv` values to the last digit; other thread counts, CPU "
            "kernels or processors give values that differ like a change of seed (see docs/reliability.md), "
            "which the suite's comparison with this reference reports.\n\n"
            f"Files: {files}. Start with `report.md` (or `report.html`, self-contained).\n")
    readme = (out / "README.md").read_text()
    readme = re.sub(r"```\n.*?\n```\n\n.*?Start with `report.md` \(or `report.html`, self-contained\).\n", text,
                    readme, count=1, flags=re.S)
    (out / "README.md").write_text(readme)
    print(f"{name}: {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    for n in sys.argv[1:] or COMMANDS:
        regenerate(n)
