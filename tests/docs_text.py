"""The documentation as the tests read it: README.md and the pages of docs/.

Tests run the examples of the docs as they are written, wherever a page keeps
them: they find a section by its heading's title (or a passage by its first
words) in any page, never by file, so moving a section between pages changes
no test. A title or passage that is missing, or found twice, fails the test
that asked for it, naming what it looked for.
"""
from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^(#{1,6}) +(.+?) *$")
FENCE_LINE = re.compile(r"^ *(```|~~~)")
FENCE = re.compile(r"^( *)```([\w-]*)\n(.*?)^\1```", re.S | re.M)


def page_paths() -> list[Path]:
    """README.md, then every page of docs/ in name order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def pages() -> dict[str, str]:
    """Each page's text by its path from the repository's root (`docs/audit.md`)."""
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in page_paths()}


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of each Markdown heading outside fenced blocks."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if FENCE_LINE.match(line):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            out.append((i, len(m[1]), m[2]))
    return out


def find_section(title: str) -> tuple[str, str]:
    """(page, text) of the section whose heading is `title` (any level), from its heading
    to the next heading of the same or a higher level."""
    found = []
    for name, text in pages().items():
        lines = text.splitlines(keepends=True)
        marks = headings(text)
        for n, (i, level, t) in enumerate(marks):
            if t == title:
                end = next((j for j, lv, _ in marks[n + 1:] if lv <= level), len(lines))
                found.append((name, "".join(lines[i:end])))
    assert found, f"no section titled {title!r} in README.md or docs/*.md"
    assert len(found) == 1, f"section {title!r} found {len(found)} times: {[p for p, _ in found]}"
    return found[0]


def section(title: str) -> str:
    """The text of the section whose heading is `title`, in whichever page holds it."""
    return find_section(title)[1]


def page_of(title: str) -> str:
    """The page (`docs/cli.md`) that holds the section `title`: a filename for compile()."""
    return find_section(title)[0]


def after(start: str) -> str:
    """The text from `start`, found exactly once in all the pages, to the end of its page."""
    found = [text[text.index(start):] for text in pages().values() if start in text]
    assert found, f"{start!r} is in no page of README.md or docs/*.md"
    assert len(found) == 1 and found[0].count(start) == 1, f"{start!r} found more than once"
    return found[0]


def paragraph(start: str) -> str:
    """The paragraph (up to a blank line) that begins with `start`, in whichever page holds it."""
    text = after(start)
    return text[:text.index("\n\n")] if "\n\n" in text else text


def blocks(text: str, lang: str) -> list[str]:
    """The fenced blocks of one language (`sql`, `python`, `sh`), in order, with the
    indentation of a list item removed."""
    return [textwrap.dedent(body) for _, kind, body in FENCE.findall(text) if kind == lang]


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: the line of its opening fence, its language (`''` for
    none), its text (a list item's indentation removed) and the titles of the sections it
    is in, the page's title first."""
    page: str
    line: int
    lang: str
    body: str
    sections: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang or 'no language'}, under {self.sections[-1]!r})"


def fenced() -> list[Block]:
    """Every fenced block of every page, of every language, in page order."""
    out = []
    for name, text in pages().items():
        marks = headings(text)
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start())
            stack: list[tuple[int, str]] = []
            for i, level, title in marks:
                if i > line:
                    break
                stack = [s for s in stack if s[0] < level] + [(level, title)]
            out.append(Block(name, line + 1, m[2], textwrap.dedent(m[3]), tuple(t for _, t in stack)))
    return out


# How the Functions table names the roles that may call a function.
ROLE_NAMES = {"reader": "hush_reader", "writer": "hush_writer", "oauth worker": "hush_oauth_worker",
              "admin": "hush_admin", "auditor": "hush_auditor"}


def documented_roles(row: str, name: str) -> dict[str, set[str]]:
    """The roles the Functions table says may call each function: of the rows whose first
    column starts with `row` (a regex), the functions `name` (a regex, one group) finds in it."""
    documented: dict[str, set[str]] = {}
    for first, roles in re.findall(rf"^\| (`{row}.*?) \| (.*?) \|", section("Functions"), re.M):
        for function in re.findall(name, first):
            documented[function] = {ROLE_NAMES[r.strip()] for r in roles.split(",")}
    return documented
