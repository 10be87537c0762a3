"""The documentation holds together: the README stays short, every relative link in README.md and docs/*.md reaches
a file (and heading) of the repository, nothing points into ../shared or out of the clone, and the README's Python
example only uses names the package has. Reads files only; no import of torch beyond the package's own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import robustbench_mix

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def prose(path: Path) -> str:
    """The page without its fenced code blocks (a link inside a code block is text, not a link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def links(path: Path) -> list[tuple[str, str]]:
    return LINK.findall(prose(path))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (word characters, spaces and hyphens kept),
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in HEADING.findall(prose(path)):
        s = slug(h)
        out.add(f"{s}-{seen[s]}" if s in seen else s)
        seen[s] = seen.get(s, 0) + 1
    return out


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None  # http:, https:, mailto:


def test_the_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 220, f"README.md has {n} lines; move the detail into docs/"


def test_the_docs_pages_exist_and_the_readme_and_index_link_each():
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert {"command-line.md", "own-model.md", "presets-and-results.md", "protocol.md", "results-contract.md",
            "reliability.md", "ray.md", "development.md"} <= pages
    for linker in (README, ROOT / "docs" / "index.md"):
        linked = {Path(t.split("#")[0]).name for _, t in links(linker) if not is_external(t)}
        missing = pages - linked
        assert not missing, f"{linker.relative_to(ROOT)} does not link {sorted(missing)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_of_the_repository(page):
    bad = []
    for text, target in links(page):
        if is_external(target):
            continue
        if "../shared" in target or "../shared" in text:
            bad.append(f"[{text}]({target}): ../shared is not in a clone")
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.is_relative_to(ROOT):
            bad.append(f"[{text}]({target}): outside the repository")
        elif not dest.exists():
            bad.append(f"[{text}]({target}): {dest.relative_to(ROOT)} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"[{text}]({target}): no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not bad, f"{page.relative_to(ROOT)}:\n" + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_sends_a_reader_to_shared(page):
    """Not even as text: ../shared/ is the workspace's, a clone has no such folder."""
    lines = [i for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if "../shared" in line]
    assert not lines, f"{page.relative_to(ROOT)} mentions ../shared on lines {lines}"


def readme_example() -> tuple[int, str]:
    text = README.read_text(encoding="utf-8")
    m = re.search(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert m, "README.md has no ```python example"
    return text[:m.start()].count("\n") + 1, m.group(1)


def test_the_readme_example_is_on_the_first_screen_and_uses_only_the_packages_names():
    line, code = readme_example()
    assert line <= 50, f"the README's Python example starts on line {line}, below the first screen"
    tree = ast.parse(code)  # it is valid Python
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
               for a in node.names if a.name == "robustbench_mix"}
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases}
    used |= {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "robustbench_mix"
             for a in node.names}
    assert used, "the README's example uses no robustbench_mix name"
    missing = sorted(n for n in used if not hasattr(robustbench_mix, n))
    assert not missing, f"the README's example uses names robustbench_mix does not have: {missing}"
    assert {"evaluate", "headline"} <= used


def test_the_readme_keeps_the_set_up_commands_that_ci_runs():
    text = README.read_text(encoding="utf-8")
    assert "pip install -e . && python -m robustbench_mix.suite" in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in text
    assert 'pip install -e ".[test]" && python -m pytest -q' in (ROOT / ".ci" / "run").read_text()
    assert "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu" in text
