"""The repository refers only to itself.

Whoever clones it must be able to follow every reference: the product's contract lives in
docs/sources.md, docs/marts.md, docs/quality.md and docs/reports.md, and no file may point at a
folder outside the repository. Checked on every file git tracks or would track (not ignored),
except binary files and the recorded benchmark results (bench/results/, which keep the paths
of the machine that measured them). Files inside docs/ may name each other by their bare
relative names.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SKIPPED_PREFIXES = ("bench/results/",)
# Written in pieces, so that no line of this file spells an outside path itself.
MD, UP, WORK, SIBLING = ".md", "../", "/work/", "".join(("sha", "red"))
OUTSIDE = re.compile("|".join(re.escape(root + SIBLING) for root in (UP, WORK)))
CONTRACT_FILE = re.compile(r"(?<![\w.-])((?:[\w.-]+/)*)(?:sources|marts|quality|reports)\.md\b")


def repository_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    names = sorted({n for n in listed.decode().split("\0") if n})
    return [n for n in names if not n.startswith(SKIPPED_PREFIXES)]


def text_of(name: str) -> str | None:
    """The file's text, or None for a binary file or one deleted from the working tree."""
    path = Path(PROJECT_ROOT, name)
    if not path.is_file():
        return None
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def offending_lines(name: str, text: str) -> list[str]:
    """Lines of one file that point outside the repository or name a contract file bare."""
    in_docs = name.startswith("docs/")
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if OUTSIDE.search(line):
            found.append(f"{name}:{number}: {line.strip()}")
            continue
        for match in CONTRACT_FILE.finditer(line):
            folder = match.group(1)
            if folder.endswith("docs/") or (in_docs and folder == ""):
                continue
            found.append(f"{name}:{number}: {line.strip()}")
            break
    return found


def test_no_file_refers_outside_the_repository():
    offending = []
    checked = 0
    for name in repository_files():
        text = text_of(name)
        if text is None:
            continue
        checked += 1
        offending += offending_lines(name, text)
    assert checked > 100, f"only {checked} text files found: is this the repository?"
    assert not offending, (
        "references outside the repository (use docs/sources.md, docs/marts.md, "
        "docs/quality.md, docs/reports.md, or a path inside the repository):\n"
        + "\n".join(offending)
    )


@pytest.mark.parametrize(
    ("name", "line", "bad"),
    [
        ("README.md", "The contract is `docs/sources.md`.", False),
        ("README.md", "see [docs/marts.md](docs/marts.md#kpi_daily)", False),
        ("expectations/README.md", "([docs/quality.md](../docs/quality.md))", False),
        # pieces joined at run time, so that this file does not match itself
        ("docs/quality.md", f"built from [sources{MD}](sources{MD})", False),
        ("src/x.py", f"the rules of quality{MD}", True),
        ("src/x.py", f"({SIBLING}/spec/marts{MD})", True),
        ("docs/marts.md", f"see {UP}{SIBLING}/spec/reports{MD}", True),
        ("bench/bench.py", f"default {WORK}{SIBLING}/data", True),
        ("dbt_project/x.yml", "_marketing__sources.yml", False),
        ("src/x.py", "docs/decisions.md", False),
    ],
)
def test_what_counts_as_outside(name, line, bad):
    assert bool(offending_lines(name, line)) is bad
