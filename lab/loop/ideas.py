"""Idea files (1_ideas/{date}_{slug}.md): create, parse, list, rate, critique; the loop's first two steps."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lab import files, journal_format, slugs

STATUSES = ("proposed", "critiqued", "running", "done", "reported", "dropped")
KEYS = ("status", "rating", "created", "slug", "title")
TEMPLATE = "_TEMPLATE.md"
MAX_TITLE = 100
SIMILAR = 0.85
CREATED = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")
FIELD = re.compile(r"([A-Za-z_][\w-]*):(.*)")
# The critic subagent's file (Claude Code); its body is the brief `lab idea critique` prints, so the two cannot drift.
CRITIC = ".claude/agents/critic.md"
REPO = Path(__file__).resolve().parents[2]


class IdeaError(ValueError):
    """A bad idea file or request; the message names the file or slug and the fix."""


@dataclass(frozen=True)
class Idea:
    slug: str
    title: str
    status: str
    rating: int | None
    created: str
    path: Path


def ideas_dir(root: Path) -> Path:
    return Path(root) / "1_ideas"


def _rel(path: Path) -> str:
    return f"1_ideas/{path.name}"


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise IdeaError(f"{_rel(path)} is not UTF-8 text (byte {e.start}): re-save it as UTF-8") from None


def _front(path: Path, text: str) -> tuple[list[str], dict[str, int], int]:
    """(lines split on '\\n' only, so joining gives the bytes back; key -> line index; index of the closing `---`)."""
    lines = text.split("\n")
    if lines[0].rstrip("\r") != "---":
        raise IdeaError(f"{_rel(path)}:1: no front matter: the file must start with a `---` line (copy {TEMPLATE})")
    fields: dict[str, int] = {}
    for i, raw in enumerate(lines[1:], start=1):
        line = raw.rstrip("\r")
        if line == "---":
            return lines, fields, i
        match = FIELD.fullmatch(line)
        if not match:
            raise IdeaError(f"{_rel(path)}:{i + 1}: front-matter line {line!r} is not `key: value`: fix it or "
                            "close the front matter with `---`")
        if match[1] in fields:
            raise IdeaError(f"{_rel(path)}:{i + 1}: `{match[1]}:` repeats line {fields[match[1]] + 1}: keep one")
        fields[match[1]] = i
    raise IdeaError(f"{_rel(path)}:1: the front matter is never closed: add a `---` line after its last key")


def _value(lines: list[str], index: int) -> str:
    return lines[index].rstrip("\r").split(":", 1)[1].strip()


def _parse(path: Path, text: str) -> Idea:
    lines, fields, _ = _front(path, text)
    for key in KEYS:
        if key not in fields:
            raise IdeaError(f"{_rel(path)}:1: the front matter has no `{key}:` line: add it (see {TEMPLATE})")
    values = {key: _value(lines, fields[key]) for key in KEYS}

    def bad(key: str, why: str) -> IdeaError:
        return IdeaError(f"{_rel(path)}:{fields[key] + 1}: {key} {values[key]!r} {why}")

    if values["status"] not in STATUSES:
        raise bad("status", f"is not one of {', '.join(STATUSES)}: fix the line")
    rating = None
    if values["rating"]:
        if not re.fullmatch(r"[1-5]", values["rating"]):
            raise bad("rating", "is not an integer 1-5: fix it, or leave it empty until the critique")
        rating = int(values["rating"])
    if not CREATED.fullmatch(values["created"]):
        raise bad("created", f"is not `YYYY-MM-DD HH:MM`: write the creation time (`date '+{journal_format.STAMP}'`)")
    try:
        slugs.check(values["slug"])
    except slugs.SlugError as e:
        raise bad("slug", f"is not a valid slug ({e})") from None
    if not path.name.endswith(f"_{values['slug']}.md"):
        raise bad("slug", f"does not match the file name: name the file YYYY-MM-DD_{values['slug']}.md or fix the slug")
    if not values["title"]:
        raise bad("title", "is empty: write a one-line title")
    return Idea(values["slug"], values["title"], values["status"], rating, values["created"], path)


def all_ideas(root: Path) -> list[Idea]:
    """Every idea file but the template, parsed, in file-name order; a malformed file raises IdeaError."""
    folder = ideas_dir(root)
    paths = sorted(p for p in folder.glob("*.md") if p.name != TEMPLATE and p.is_file()) if folder.is_dir() else []
    ideas, seen = [], {}
    for path in paths:
        idea = _parse(path, _read(path))
        if idea.slug in seen:
            raise IdeaError(f"slug '{idea.slug}' is in both {_rel(seen[idea.slug])} and {_rel(path)}: "
                            "rename one (slugs are unique across 1_ideas/)")
        seen[idea.slug] = path
        ideas.append(idea)
    return ideas


def find(root: Path, slug: str) -> Idea:
    for idea in all_ideas(root):
        if idea.slug == slug:
            return idea
    raise IdeaError(f"no idea with slug {slug!r} in 1_ideas/ (see `lab idea list`)")


def _write_new(path: Path, text: str) -> None:
    try:
        files.write_new(path, text.encode())
    except FileExistsError:
        raise IdeaError(f"{_rel(path)} already exists: choose another slug") from None


def _replace(path: Path, text: str) -> None:
    files.replace(path, text.encode())


def _set_fields(path: Path, text: str, changes: dict[str, str]) -> str:
    """`text` with the given front-matter lines rewritten as `key: value`; every other byte unchanged."""
    lines, fields, _ = _front(path, text)
    for key, value in changes.items():
        if key not in fields:
            raise IdeaError(f"{_rel(path)}:1: the front matter has no `{key}:` line: add it (see {TEMPLATE})")
        old = lines[fields[key]]
        ending = "\r" if old.endswith("\r") else ""
        lines[fields[key]] = (f"{key}: {value}" if value else f"{key}:") + ending
    return "\n".join(lines)


def _norm_title(title: str) -> str:
    return re.sub(r"[\W_]+", " ", title.lower()).strip()


def _check_title(title: str) -> str:
    try:
        return slugs.check_title(title, MAX_TITLE, "Wider MLP (4x -> 6x)", "details go in the Hypothesis section")
    except slugs.TitleError as e:
        raise IdeaError(str(e)) from None


def _similar(a: str, b: str) -> bool:
    # Two empty strings would score 1.0: an all-punctuation title matches nothing.
    return bool(a and b) and difflib.SequenceMatcher(None, a, b).ratio() >= SIMILAR


def _sweep_sibling(slug: str, title: str, idea: Idea) -> bool:
    """Same words, other numbers (lr-warmup-100 vs lr-warmup-200): a parameter sweep, not a duplicate."""
    def shape(text: str) -> str:
        return re.sub(r"\d+(\.\d+)?", "#", text)

    numbers_differ = re.findall(r"\d+", slug) != re.findall(r"\d+", idea.slug)
    return numbers_differ and shape(slug) == shape(idea.slug) and shape(_norm_title(title)) == shape(_norm_title(idea.title))


def _near_duplicate(existing: list[Idea], slug: str, title: str) -> None:
    for idea in existing:
        if idea.slug == slug:
            raise IdeaError(f"idea '{slug}' exists: {_rel(idea.path)}")
    for idea in existing:
        hit = ""
        if _sweep_sibling(slug, title, idea):
            continue
        if idea.slug.replace("-", "") == slug.replace("-", ""):
            hit = f"slug '{slug}' is '{idea.slug}' but for dashes"
        elif _similar(slug, idea.slug):
            hit = f"slug '{slug}' is close to '{idea.slug}'"
        elif _similar(_norm_title(title), _norm_title(idea.title)):
            hit = f"title {title!r} is close to {idea.title!r}"
        if hit:
            raise IdeaError(f"{hit}, a near-duplicate of {_rel(idea.path)}: extend that idea, or give this one a "
                            "clearly different slug and title")


def new(root: Path, slug: str, title: str, now: datetime | None = None) -> Idea:
    """Create 1_ideas/{YYYY-MM-DD}_{slug}.md from the template, status proposed; refuse duplicates."""
    try:
        slugs.check(slug)
    except slugs.SlugError as e:
        raise IdeaError(str(e)) from None
    title = _check_title(title)
    _near_duplicate(all_ideas(root), slug, title)
    template = ideas_dir(root) / TEMPLATE
    if not template.is_file():
        raise IdeaError(f"1_ideas/{TEMPLATE} is missing: restore it from main (`git show main:1_ideas/{TEMPLATE}`)")
    now = now or datetime.now()
    path = ideas_dir(root) / f"{now:{journal_format.DAY}}_{slug}.md"
    fields = {"status": "proposed", "rating": "", "created": f"{now:{journal_format.STAMP}}", "slug": slug, "title": title}
    text = _set_fields(template, _read(template), fields)
    lines, _, end = _front(template, text)
    head, body = "\n".join(lines[: end + 1]), "\n".join(lines[end + 1 :])
    if "{title}" not in body:
        raise IdeaError(f"1_ideas/{TEMPLATE} has no `# {{title}}` heading: restore it from main")
    text = head + "\n" + body.replace("{title}", title, 1)
    idea = _parse(path, text)  # before writing: a template that yields a bad file leaves nothing behind
    _write_new(path, text)
    return idea


def _update(root: Path, slug: str, changes: dict[str, str]) -> Idea:
    idea = find(root, slug)
    text = _read(idea.path)
    new_text = _set_fields(idea.path, text, changes)
    if new_text != text:
        _replace(idea.path, new_text)
    return _parse(idea.path, new_text)


def set_status(root: Path, slug: str, status: str) -> Idea:
    """Rewrite the idea's `status:` line; nothing else in the file changes."""
    if status not in STATUSES:
        raise IdeaError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    return _update(root, slug, {"status": status})


def rate(root: Path, slug: str, rating: int) -> Idea:
    """Rewrite the idea's `rating:` line (1-5); only once it has been critiqued."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise IdeaError(f"rating {rating!r} for '{slug}' is not an integer 1-5 (5 = run it first)")
    idea = find(root, slug)
    if idea.status == "proposed":
        raise IdeaError(f"idea '{slug}' has no critique yet: run `lab idea critique {slug}` first")
    return _update(root, slug, {"rating": str(rating)})


def _section(lines: list[str], end: int, name: str) -> tuple[int, int] | None:
    """(heading index, index after its last line) of the body's `## {name}` section, or None."""
    start = None
    for i in range(end + 1, len(lines)):
        line = lines[i].rstrip("\r")
        if start is None and re.fullmatch(rf"##\s+{re.escape(name)}\b.*", line):
            start = i
        elif start is not None and re.match(r"#{1,2}\s", line):
            return start, i
    return None if start is None else (start, len(lines))


def prediction(idea: Idea) -> str:
    """The text of the idea's `## Prediction` section without HTML comments ('' if empty)."""
    text = _read(idea.path)
    lines, _, end = _front(idea.path, text)
    found = _section(lines, end, "Prediction")
    if found is None:
        return ""
    body = "\n".join(line.rstrip("\r") for line in lines[found[0] + 1 : found[1]])
    return re.sub(r"<!--.*?-->", "", body, flags=re.S).strip()


def critique_prompt(idea: Idea) -> str:
    """The complete prompt for a critic subagent: the critic's brief, then the idea file."""
    text = _read(idea.path).rstrip("\n")
    return f"""{critic_brief()}

The idea file, {_rel(idea.path)}:
----- begin {_rel(idea.path)} -----
{text}
----- end {_rel(idea.path)} -----
"""


def critic_brief() -> str:
    """The critic's brief, written once: the body of .claude/agents/critic.md less its first (FROZEN) paragraph."""
    path = REPO / CRITIC
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IdeaError(f"{path} is missing: restore it with `git checkout -- {CRITIC}`") from None
    _, fenced, body = text.removeprefix("---\n").partition("\n---\n")
    _, split, brief = body.partition("\n\n")
    if not (text.startswith("---\n") and fenced and split and brief.strip()):
        raise IdeaError(f"{path} is not front matter, a FROZEN note, then the brief: restore it with "
                        f"`git checkout -- {CRITIC}`")
    return brief.rstrip("\n")


def append_critique(root: Path, slug: str, text: str) -> Idea:
    """Append `text` under `## Critique` as `### Critique {now}`; a proposed idea becomes critiqued."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise IdeaError(f"the critique for '{slug}' is empty: nothing appended")
    idea = find(root, slug)
    old = _read(idea.path)
    lines, _, end = _front(idea.path, old)
    found = _section(lines, end, "Critique")
    if found is None:
        raise IdeaError(f"{_rel(idea.path)} has no `## Critique` heading: add one at the end of the file")
    start, stop = found
    last = stop
    while last > start + 1 and not lines[last - 1].strip():
        last -= 1
    # The critic's own headings go below ours, so the file's `##` sections stay where they are.
    body = [("###" + line) if re.match(r"#{1,3}\s", line) else line for line in text.split("\n")]
    block = ["", f"### Critique {datetime.now():{journal_format.STAMP}}", "", *body, ""]
    new_text = "\n".join(lines[:last] + block + lines[stop:])
    if idea.status == "proposed":
        new_text = _set_fields(idea.path, new_text, {"status": "critiqued"})
    _replace(idea.path, new_text)
    return _parse(idea.path, new_text)
