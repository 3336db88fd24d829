"""`embodia` command line. Thin: the options of every subcommand are generated from its config
dataclass (embodia.commands, embodia.configs); this file builds the parser, applies the given options
to the command's config and calls it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from embodia.commands import COMMANDS, Command, console
from embodia.commands.common import load_task_files_of
from embodia.configs import add_options, build, options_markdown, parse_into

DESCRIPTION = (
    "embodia: build physical agents on robot foundation models. Shipped policies are named base, "
    "metaworld_mt10 and metaworld_mt50 wherever a checkpoint is accepted."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embodia", description=DESCRIPTION)
    _add_commands(parser, COMMANDS, depth=0)
    return parser


def _add_commands(parser: argparse.ArgumentParser, commands: tuple[Command, ...], depth: int) -> None:
    sub = parser.add_subparsers(dest=f"_level{depth}", required=True, metavar="COMMAND")
    for cmd in commands:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description or cmd.help,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        if cmd.subcommands:
            _add_commands(p, cmd.subcommands, depth + 1)
        else:
            add_options(p, cmd.options, cmd.base({}) if cmd.base else None)  # the defaults it starts from
            p.set_defaults(_command=cmd)


def parse(argv: list[str] | None = None) -> tuple[Command, Any]:
    """The command and its typed options (the config dataclass), as `main` would run them."""
    ns = build_parser().parse_args(argv)
    cmd: Command = ns._command
    given = {k: v for k, v in vars(ns).items() if not k.startswith("_")}
    options = parse_into(cmd.base(given), given) if cmd.base else build(cmd.options, given)
    return cmd, options


def main(argv: list[str] | None = None) -> int:
    try:
        cmd, options = parse(argv)
        load_task_files_of(options)  # --tasks FILE: user task families, before anything uses the catalogue
        return int(cmd.run(options) or 0)
    except ValueError as exc:  # bad input: say what was wrong, no traceback
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def reference_markdown() -> str:
    """The CLI reference (docs/cli.md), generated from the commands' configs."""
    out = [
        "# CLI reference\n",
        "Generated from the config dataclasses by `python -m embodia.cli --reference > docs/cli.md`; "
        "a test fails when this file and the code disagree.\n",
    ]

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append(options_markdown(parser, " ".join(path)))
            return
        for name, child in subs[0].choices.items():
            walk(child, [*path, name])

    walk(build_parser(), ["embodia"])
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--reference"]:
        print(reference_markdown(), end="")
        sys.exit(0)
    sys.exit(main())
