"""The docs stay navigable: a README a newcomer reads in ten minutes that links
every page of docs/, pages that say what they hold and link back, links that
lead somewhere (a file, and a heading for `#anchor`), and a DEVELOPMENT.md
layout that names what is in the tree."""
from __future__ import annotations

import fnmatch
import glob
import re
import subprocess
from pathlib import Path

from docs_text import FENCE, ROOT, headings, page_paths

PAGES = [*page_paths(), ROOT / "CHANGELOG.md", ROOT / "DEVELOPMENT.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# Generated from the client's docstrings by tools/pydoc_md.py, with a header of its own.
GENERATED = {ROOT / "docs" / "python.md"}


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, _, title in headings(page.read_text()):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    """The link targets of a page's prose (not of its code)."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))
    return LINK.findall(prose)


def test_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 400


def test_docs_has_pages_and_the_readme_links_each() -> None:
    docs = sorted((ROOT / "docs").glob("*.md"))
    assert len(docs) >= 6
    linked = {(ROOT / t.split("#")[0]).resolve() for t in links(ROOT / "README.md") if not t.startswith("#")}
    assert [p.name for p in docs if p.resolve() not in linked] == []
    for name in ("CHANGELOG.md", "DEVELOPMENT.md"):
        assert (ROOT / name).resolve() in linked, name


def test_every_page_links_back_to_the_readme() -> None:
    """Each page opens with what it holds, then a link back, before its first section."""
    for page in PAGES[1:]:
        if page in GENERATED:
            continue
        text = page.read_text()
        first_section = text.find("\n## ")
        head = text[:first_section if first_section > 0 else len(text)]
        assert re.search(r"\]\((\.\./)?README\.md\)", head), page.name
        assert head.startswith("# ") and len(head.split("\n\n")) >= 2, page.name  # a title, a summary


def test_every_relative_link_leads_somewhere() -> None:
    broken = []
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def layout_paths() -> list[str]:
    """The first column of DEVELOPMENT.md's layout block: a path, a directory (ending in /)
    or a glob."""
    text = (ROOT / "DEVELOPMENT.md").read_text()
    start = text.index("\n## Layout\n")
    block = re.search(r"```\n(.*?)```", text[start:], re.S)
    assert block is not None
    return [line.split()[0] for line in block[1].splitlines() if line.strip()]


def tree() -> list[str]:
    """The repository's files, tracked or not yet (but not ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).exists()]  # a deletion not yet committed is gone


def test_development_layout_names_what_is_in_the_tree() -> None:
    """Each path the layout block lists exists (a glob matches a file); every top-level entry
    of the tree is named by a line (itself or something in it); and each of tools/, bench/*.py,
    tests/*_helpers.py and the client's modules is named by a line of its own or a glob, not
    only by its directory's."""
    paths = layout_paths()
    assert len(paths) >= 10
    assert [p for p in paths if not glob.glob(str(ROOT / p))] == []
    files = tree()
    top = {f.split("/")[0] for f in files}
    assert sorted(e for e in top if not any(p.rstrip("/") == e or p.startswith(e + "/") for p in paths)) == []
    specific = [p for p in paths if not p.endswith("/")]
    entries = {"/".join(f.split("/")[:2]) + ("/" if f.count("/") > 1 else "") for f in files if f.startswith("tools/")}
    entries |= {f for f in files if fnmatch.fnmatch(f, "bench/*.py") or fnmatch.fnmatch(f, "tests/*_helpers.py")
                or re.fullmatch(r"python_client/src/hush/[^/]+\.py", f)}
    assert sorted(e for e in entries if e not in paths and not any(fnmatch.fnmatch(e, p) for p in specific)) == []
