"""The project's documentation is self-contained: no file points outside the project, and every reference to a
section of docs/method.md names a heading that exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SCANNED = ["recipes", "docs", "gdiff", "tests", "benchmarks", "README.md", "CHANGELOG.md", "pyproject.toml"]
# spelled in two halves so that this file does not match itself
OUTSIDE = ("METHOD" + ".md", ".." + "/shared")
METHOD_REF = re.compile(r"method\.md#([A-Za-z0-9_-]+)")
LOCAL_REF = re.compile(r"\]\(#([A-Za-z0-9_-]+)\)")


def text_files() -> list[Path]:
    """Every UTF-8 text file of the scanned paths (binary files such as pictures and weights are skipped)."""
    found = []
    for name in SCANNED:
        base = ROOT / name
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in paths:
            if "__pycache__" in path.parts or path.suffix in (".png", ".safetensors", ".npz", ".pt", ".pyc"):
                continue
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            found.append(path)
    return found


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The anchors of every heading outside code blocks; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def test_slug_follows_github():
    assert slug("DDGAN hyper-parameters") == "ddgan-hyper-parameters"
    assert slug("The authors' 25-Gaussians code") == "the-authors-25-gaussians-code"
    assert slug("Sampling (`gdiff.sample`)") == "sampling-gdiffsample"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_the_scan_sees_the_project():
    names = {p.relative_to(ROOT).as_posix() for p in text_files()}
    assert {"README.md", "docs/method.md", "recipes/cifar10_ddgan.yaml", "gdiff/build.py",
            "tests/test_docs.py"} <= names


@pytest.mark.parametrize("needle", OUTSIDE)
def test_no_file_points_outside_the_project(needle):
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in text_files()
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if needle in line]
    assert not offenders, f"{needle} is not part of the project; point to docs/method.md instead: {offenders}"


def test_method_md_references_name_existing_sections():
    method = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")
    headings = anchors(method)
    refs = [(p, ref) for p in text_files() for ref in METHOD_REF.findall(p.read_text(encoding="utf-8"))]
    refs += [(ROOT / "docs" / "method.md", ref) for ref in LOCAL_REF.findall(method)]
    assert len(refs) > 20  # the recipes, docs, code and tests that cite it
    broken = [f"{p.relative_to(ROOT)}: #{ref}" for p, ref in refs if ref not in headings]
    assert not broken, f"references to missing sections of docs/method.md: {broken}"
