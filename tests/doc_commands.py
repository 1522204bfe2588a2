"""The shell commands and links of README.md and docs/*.md, as the tests read them.

A command is one logical line of a fenced ```sh / ```bash block: continuation lines (ending in `\\`)
joined, blank lines and `#` comments dropped, an inline `# comment` cut off by shlex. Leading
`NAME=value` words are the command's environment, not its program.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHELL_LANGUAGES = ("sh", "bash", "shell", "console")
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([^\s`]*)")
ENV_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# Words that make a line more than one plain command: pipes, lists, redirections, substitutions.
SHELL_SYNTAX = re.compile(r"^(\||\|\||&&|;|&|>|>>|<|[0-9]?>&?[0-9]?|do|done|then|fi)$|;$|\$|`")


def doc_files() -> list[Path]:
    """README.md, then docs/*.md in name order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclasses.dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: tuple[str, ...]


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file, with its language tag ('' when none)."""
    blocks, current, start, language, fence = [], None, 0, "", ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        if current is None:
            if match:
                current, start, fence, language = [], number, match.group(1), match.group(2).lower()
        elif match and match.group(1).startswith(fence) and not match.group(2):
            blocks.append(Block(path, start, language, tuple(current)))
            current = None
        else:
            current.append(line)
    if current is not None:
        raise ValueError(f"{path.relative_to(REPO)}:{start}: fenced block never closed")
    return blocks


@dataclasses.dataclass(frozen=True)
class Command:
    doc: str  # the Markdown file, relative to the repository
    line: int  # 1-based line where the command starts
    text: str  # the command re-quoted on one line (continuations joined, comment cut)
    env: tuple[str, ...]  # leading NAME=value words
    argv: tuple[str, ...]  # the program and its arguments, shell quoting removed

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def plain(self) -> bool:
        """One simple command: no pipe, list, redirection, loop or substitution."""
        return bool(self.argv) and not any(SHELL_SYNTAX.search(word) for word in self.argv)


def shell_commands(path: Path) -> list[Command]:
    """The commands of the shell blocks of one Markdown file."""
    commands = []
    for block in fenced_blocks(path):
        if block.language not in SHELL_LANGUAGES:
            continue
        pending, first = "", 0
        for offset, raw in enumerate(block.lines, block.line + 1):
            stripped = raw.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if not pending:
                first = offset
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            logical, pending = pending + stripped, ""
            words = shlex.split(logical, comments=True)
            env = []
            while words and ENV_WORD.match(words[0]):
                env.append(words.pop(0))
            text = shlex.join([*env, *words])
            commands.append(Command(str(path.relative_to(REPO)), first, text, tuple(env), tuple(words)))
        if pending:
            raise ValueError(f"{path.relative_to(REPO)}:{first}: a continuation line ends the block")
    return commands


def all_commands() -> list[Command]:
    return [c for path in doc_files() for c in shell_commands(path)]


def launch_commands() -> list[list[str]]:
    """The arguments after `python launch/launch.py` of every such command, each once, in document order."""
    seen, out = set(), []
    for command in all_commands():
        argv = command.argv
        if len(argv) > 2 and argv[0] in ("python", "python3") and argv[1] == "launch/launch.py":
            if argv[2:] not in seen:
                seen.add(argv[2:])
                out.append(list(argv[2:]))
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every Markdown link or image in `path` that is not a URL (code spans and blocks skipped)."""
    links, in_block = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            in_block = not in_block
            continue
        if in_block:
            continue
        line = re.sub(r"`[^`]*`", "", line)
        for target in re.findall(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", line):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                links.append((number, target))
    return links


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors, counts, in_block = set(), {}, False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_block = not in_block
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_block or not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors
