"""Every command the docs quote still exists: README.md, docs/*.md and the model cards.

Commands are the lines of fenced ```bash / ```sh / ```console blocks (comment lines skipped, trailing
`# comments` stripped, backslash continuations joined, `a && b` split), plus the command column of the
README's headline table. Each is checked at least with `--help`:

- `embodia SUB ... ARGS`: `embodia.cli.main([SUB, ..., "--help"])` in this process must exit 0, where
  SUB ... is the longest run of leading words that are subcommands of `embodia.cli.build_parser()`;
  then the whole line is parsed (not run) and must not name an unknown option or choice.
- `python benchmarks/X.py ...` / `python examples/X.py ...`: `python X.py --help` must exit 0 (an
  import crash shows here); `[bash] benchmarks/X.sh ...`: `bash X.sh --help` must exit 0.
- `lerobot-train ...` (LeRobot's own commands, from the LeRobot environment of `embodia lerobot setup`):
  `lerobot-train --policy.type=TYPE --help` must exit 0 there and list every `--option` the line uses.
- setup lines (`python3 -m venv`, `pip`, `python -m pytest`, `cd`, `export`, `git`) are skipped but counted.
Any other command fails the test: a quoted command this file cannot check is a command nobody checks.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHELL_LANGS = {"bash", "sh", "console", "shell"}
SETUP = "setup"
MIN_COMMANDS = 20


def doc_files() -> list[Path]:
    files = [
        README,
        *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "src/embodia/policy").glob("*/README.md")),
    ]
    return [f for f in files if f.is_file()]


@dataclass(frozen=True)
class Command:
    file: str  # relative to the repository
    line: int
    text: str  # as quoted, continuations joined
    kind: str  # "embodia" | "script" | "setup" | "unknown"
    argv: tuple[str, ...]  # embodia: the words after the program; script: the script path and its args

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


# ----------------------------------------------------------------------------------------- extraction
def _scan(text: str, stop) -> int:
    """Index of the first character outside quotes where stop(text, i) holds, else len(text)."""
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif stop(text, i):
            return i
        i += 1
    return len(text)


def strip_comment(line: str) -> str:
    """`cmd args   # comment` -> `cmd args` (a # inside quotes or inside a word is kept)."""
    end = _scan(line, lambda t, i: t[i] == "#" and (i == 0 or t[i - 1].isspace()))
    return line[:end].rstrip()


def split_chain(line: str) -> list[str]:
    """`a && b` -> [a, b] (outside quotes)."""
    parts = []
    while True:
        i = _scan(line, lambda t, j: t.startswith("&&", j))
        parts.append(line[:i].strip())
        if i >= len(line):
            return [p for p in parts if p]
        line = line[i + 2 :]


def fenced_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) for each command in the file's shell code blocks."""
    out: list[tuple[int, str]] = []
    lang = None  # inside a fence: its language
    pending: tuple[int, str] | None = None  # a line continued with a backslash
    lines = text.splitlines()
    console_prompts = False
    for n, raw in enumerate(lines, start=1):
        fence = re.match(r"^\s*```\s*([\w+-]*)", raw)
        if fence:
            if lang is None:
                lang = fence.group(1).lower() or "text"
                # A console block with `$ ` prompts: only the prompted lines are commands.
                block = []
                for later in lines[n:]:
                    if re.match(r"^\s*```", later):
                        break
                    block.append(later)
                console_prompts = lang == "console" and any(b.lstrip().startswith("$ ") for b in block)
            else:
                lang, pending = None, None
            continue
        if lang not in SHELL_LANGS:
            continue
        line = raw.strip()
        if pending is None:
            if console_prompts:
                if not line.startswith("$ "):
                    continue
                line = line[2:].strip()
            if not line or line.startswith("#"):
                continue
            start, body = n, line
        else:
            start, body = pending[0], pending[1] + " " + line
            pending = None
        if body.endswith("\\") and not strip_comment(body).endswith("\\\\"):
            pending = (start, body[:-1].rstrip())
            continue
        body = strip_comment(body)
        for part in split_chain(body):
            out.append((start, part))
    return out


def headline_table(text: str) -> tuple[int, list[str], list[tuple[int, list[str]]]] | None:
    """The README's `what | figure | command` table: (header line, header cells, [(line, cells)])."""
    tables = markdown_tables(text)
    for start, header, rows in tables:
        if [h.strip().lower() for h in header] == ["what", "figure", "command"]:
            return start, header, rows
    return None


def markdown_tables(text: str) -> list[tuple[int, list[str], list[tuple[int, list[str]]]]]:
    tables = []
    lines = text.splitlines()
    in_fence = False
    i = 0
    while i < len(lines):
        if re.match(r"^\s*```", lines[i]):
            in_fence = not in_fence
        if (
            not in_fence
            and lines[i].lstrip().startswith("|")
            and i + 1 < len(lines)
            and re.match(r"^\s*\|[\s:|-]+\|\s*$", lines[i + 1])
        ):
            header = split_row(lines[i])
            rows = []
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append((j + 1, split_row(lines[j])))
                j += 1
            tables.append((i + 1, header, rows))
            i = j
            continue
        i += 1
    return tables


def split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def classify(text: str) -> tuple[str, tuple[str, ...]]:
    try:
        words = shlex.split(text)
    except ValueError:
        return "unknown", ()
    # Leading VAR=value assignments and a `timeout [-s SIG] DURATION` wrapper do not change the command.
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if words and words[0] == "timeout":
        words = words[1:]
        while words and words[0].startswith("-"):
            flag = words.pop(0)
            if flag in ("-s", "--signal", "-k", "--kill-after") and words:
                words.pop(0)
        words = words[1:]  # the duration
    if not words:
        return "unknown", ()
    prog = words[0].removeprefix(".venv/bin/")
    args = words[1:]
    if prog in ("pip", "pip3", "cd", "export", "git") or (prog == "python3" and args[:2] == ["-m", "venv"]):
        return SETUP, tuple(words)
    if prog == "embodia":
        return "embodia", tuple(args)
    if re.match(r"^(\S+/)?lerobot-[a-z_-]+$", prog):
        return "lerobot", (prog.rsplit("/", 1)[-1], *args)
    if prog == "accelerate" and "-m" in args:
        i = args.index("-m")
        if args[i + 1 : i + 2] == ["embodia.cli"]:
            return "embodia", tuple(args[i + 2 :])
    if prog in ("python", "python3"):
        if args[:2] in (["-m", "pytest"], ["-m", "venv"], ["-m", "pip"]):
            return SETUP, tuple(words)
        if args[:2] == ["-m", "embodia.cli"]:
            return "embodia", tuple(args[2:])
        if args and re.match(r"^(benchmarks|examples)/[\w-]+\.py$", args[0]):
            return "script", tuple(args)
    if prog == "bash" and args:
        prog, args = args[0], args[1:]
    if re.match(r"^(benchmarks|examples)/[\w-]+\.sh$", prog):
        return "script", (prog, *args)
    return "unknown", tuple(words)


@cache
def all_commands() -> tuple[Command, ...]:
    found: list[Command] = []
    for path in doc_files():
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text()
        for line, cmd in fenced_commands(text):
            kind, argv = classify(cmd)
            found.append(Command(rel, line, cmd, kind, argv))
        if path == README:
            table = headline_table(text)
            for line, cells in table[2] if table else []:
                for code in re.findall(r"`([^`]+)`", cells[-1] if cells else ""):
                    kind, argv = classify(code)
                    found.append(Command(rel, line, code, kind, argv))
    return tuple(found)


def checked() -> list[Command]:
    return [c for c in all_commands() if c.kind != SETUP]


# ------------------------------------------------------------------------------------------ the checks
@cache
def parser() -> argparse.ArgumentParser:
    from embodia.cli import build_parser

    return build_parser()


def _subparsers(p: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    group = getattr(p, "_subparsers", None)
    actions = group._group_actions if group is not None else p._actions
    return next((a for a in actions if isinstance(a, argparse._SubParsersAction)), None)


def subcommand_path(words: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The leading words that are subcommands, and the word that should have been one (or None)."""
    path: list[str] = []
    p = parser()
    for w in words:
        sub = _subparsers(p)
        if sub is None:
            break
        if w not in sub.choices:
            return path, None if w.startswith("-") else w
        path.append(w)
        p = sub.choices[w]
    return path, None


def test_the_docs_quote_commands():
    commands = all_commands()
    setup = [c for c in commands if c.kind == SETUP]
    print(f"{len(checked())} commands checked, {len(setup)} setup lines skipped")
    assert len(checked()) >= MIN_COMMANDS, "the extractor found almost no commands: is it broken?"
    assert len(setup) >= 5, "the README's two setup commands should give 5 setup lines"
    assert any(c.file == "README.md" and c.argv == ("demo",) for c in commands), "the demo command"


@pytest.mark.parametrize("cmd", checked(), ids=lambda c: c.id)
def test_quoted_command_exists(cmd: Command):
    if cmd.kind == "unknown":
        pytest.fail(f"{cmd.id}: {cmd.text!r} is neither an embodia command, a benchmarks/ or examples/ "
                    "script, nor a setup line: this test cannot check it")  # fmt: skip
    if cmd.kind == "lerobot":
        check_lerobot_command(cmd)
        return
    if cmd.kind == "script":
        rc, out = script_help(cmd.argv[0])
        assert rc == 0, f"{cmd.id}: `python {cmd.argv[0]} --help` exited {rc}:\n{out[-3000:]}"
        return
    path, wrong = subcommand_path(cmd.argv)
    assert wrong is None, (
        f"{cmd.id}: {cmd.text!r}: {wrong!r} is not a subcommand of `{' '.join(['embodia', *path])}`"
    )
    from embodia.cli import main

    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        main([*path, "--help"])
    assert exc.value.code in (0, None), f"{cmd.id}: `embodia {' '.join(path)} --help` exited {exc.value.code}"
    # Parse (never run) the whole line: an option or choice the CLI does not know is a stale doc.
    # Placeholders (DATASET, RUN/final) are fine as strings; errors about values of the wrong type are
    # not the docs' concern here.
    err = io.StringIO()
    with (
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.suppress(SystemExit),
    ):
        parser().parse_args(list(cmd.argv))
    stale = re.search(r"(unrecognized arguments|invalid choice|ambiguous option).*", err.getvalue())
    assert stale is None, f"{cmd.id}: {cmd.text!r}: {stale.group(0) if stale else ''}"


def check_lerobot_command(cmd: Command) -> None:
    from embodia.policy.lerobot_policy import LeRobotEnvError, env_python

    try:
        python = env_python()
    except LeRobotEnvError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{cmd.id}: CI must check LeRobot's commands: {exc}")
        pytest.skip(str(exc))
    program, *args = cmd.argv
    policy = [a for a in args if a.startswith("--policy.type=")]
    rc, out = lerobot_help(str(python.parent / program), tuple(policy))
    assert rc == 0, f"{cmd.id}: `{program} {' '.join(policy)} --help` exited {rc}:\n{out[-3000:]}"
    for arg in args:
        name = arg.split("=", 1)[0]
        if name.startswith("--"):
            assert f"[{name} " in out or f"[{name}]" in out, f"{cmd.id}: {program} has no option {name}"


@cache
def lerobot_help(program: str, args: tuple[str, ...]) -> tuple[int, str]:
    proc = subprocess.run([program, *args, "--help"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    return proc.returncode, " ".join((proc.stdout + proc.stderr).split())


@cache
def script_help(script: str) -> tuple[int, str]:
    path = REPO / script
    if not path.is_file():
        return -1, f"{script}: no such file"
    env = {**os.environ, "MUJOCO_GL": "egl"}
    try:
        proc = subprocess.run(
            ["bash" if path.suffix == ".sh" else sys.executable, str(path), "--help"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return -2, "timed out after 120 s"
    return proc.returncode, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------- the README itself
def test_readme_is_short():
    words = len(README.read_text().split())  # as `wc -w` counts
    assert words <= 2500, f"README.md has {words} words (at most 2,500: history goes to docs/results.md)"


def test_readme_table_cells_are_short():
    long = [
        (line, cell[:80])
        for _, header, rows in markdown_tables(README.read_text())
        for line, cells in [(0, header), *rows]
        for cell in cells
        if len(cell) > 300
    ]
    assert not long, f"README table cells over 300 characters (line, start): {long}"


def test_readme_headline_table():
    table = headline_table(README.read_text())
    assert table is not None, "README.md needs its `what | figure | command` headline table"
    _, _, rows = table
    assert 1 <= len(rows) <= 8, f"the headline table has {len(rows)} rows (at most 8)"
    assert all(len(cells) == 3 and cells[2].startswith("`") for _, cells in rows), "every row has a command"


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a markdown file."""
    text = re.sub(r"^\s*```.*?^\s*```", "", path.read_text(), flags=re.S | re.M)
    heads = re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_relative_links_resolve():
    broken = []
    for path in doc_files():
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file) if file else path
            if not dest.exists():
                broken.append(f"{path.relative_to(REPO)} -> {target}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{path.relative_to(REPO)} -> {target} (no such heading)")
    assert not broken, "links to missing files or headings:\n" + "\n".join(broken)
