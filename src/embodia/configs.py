"""Typed configs are the command line: one dataclass declares a setting once, with its type, default,
help text and checks, and `embodia`'s options are generated from it (see docs/architecture.md, "One
source of truth").

    @dataclass
    class RecordConfig:
        episodes: int = opt(50, "episodes to keep", parse=positive_int)
        perturb: PerturbConfig = nested(PerturbConfig, "recovery data")   # its fields become flags too

`add_options(parser, Cls)` adds one option per field (`--num-envs` for `num_envs`; booleans become
`--flag`, or `--no-flag` when they default to True), nested configs' fields included, every option
with its help text and its default. `parse_into(base, namespace)` applies only the options given on
the command line to `base` (a preset, a saved run's config, or the class defaults) and returns a new
config, so the dataclass's own `__post_init__` checks every value.

A field is hidden from the command line with `opt(..., cli=False)`; such fields are still set by
presets, recipes and saved configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, Literal

_MISSING = dataclasses.MISSING


# ---------------------------------------------------------------------------------- value parsers
def _number(text: str, kind: type, ok: Callable[[Any], bool], expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def non_negative(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def probability(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v <= 1, "a probability between 0 and 1")


def port(text: str) -> int:
    return _number(text, int, lambda v: 0 <= v <= 65535, "a TCP port (0-65535)")


def numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def positive_numbers(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def probabilities(text: str) -> list[float]:
    values = numbers(text)
    if not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers between 0 and 1, got {text!r}")
    return values


# ---------------------------------------------------------------------------------- declaring fields
def opt(
    default: Any = _MISSING,
    help: str = "",  # noqa: A002 - the argparse word
    *,
    factory: Callable[[], Any] | None = None,
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: typing.Iterable[str] | None = None,
    metavar: str | None = None,
    positional: bool = False,
    nargs: str | None = None,
    const: Any = None,
    cli: bool = True,
) -> Any:
    """A config field with what the command line needs to know about it.

    flag: the option's spelling without dashes (default: the field name with '-' for '_').
    parse: str -> value, raising argparse.ArgumentTypeError on bad text (default: from the type).
    positional / nargs: a positional argument ('?', '*', '+' as argparse takes them).
    nargs='?' with const: an option that may be given bare (`--ray` means `--ray local`).
    cli=False: settable by presets, recipes and saved configs only."""
    meta = {"help": help, "flag": flag, "parse": parse, "choices": list(choices) if choices else None,
            "metavar": metavar, "positional": positional, "nargs": nargs, "const": const, "cli": cli}  # fmt: skip
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def task_files() -> Any:
    """The `--tasks FILE[,FILE]` option: Python files defining task families (embodia.tasks), loaded
    before the command runs, in its worker processes too, and recorded by path and sha256."""
    return opt(factory=list, help="Python files defining task families (embodia.tasks), comma-separated",
               flag="tasks", metavar="FILE")  # fmt: skip


def ray_option(what: str, actors: str = "--num-envs Ray actors") -> Any:
    """The `--ray [ADDRESS]` option of a command whose `what` can run on Ray actors (embodia.cluster)."""
    return opt(None, f"run the {what} on {actors}: 'local' (a private cluster on this machine; "
               "a bare --ray), 'auto' (the running cluster) or a cluster's address; needs embodia[ray]",
               metavar="ADDRESS", nargs="?", const="local")  # fmt: skip


def nested(cls: type, help: str = "", cli: bool = True, exclude: tuple[str, ...] = ()) -> Any:  # noqa: A002
    """A sub-config whose fields are options of the same command (flat names: `--paraphrase`);
    `exclude`: its fields that are not options of this command."""
    meta = {"help": help, "nested": True, "cli": cli, "exclude": exclude}
    return dataclasses.field(default_factory=cls, metadata=meta)


# ---------------------------------------------------------------------------------- generating options
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) if value else "none"
    return "none" if value is None else str(value)


def _leaves(
    cls: type, prefix: str = "", exclude: tuple[str, ...] = ()
) -> typing.Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dest, field, type) of every command-line field, nested configs flattened; dest is the dotted
    path of the field inside `cls`."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or "help" not in f.metadata or f.name in exclude:
            continue
        tp = _strip_optional(hints[f.name])
        if f.metadata.get("nested"):
            yield from _leaves(tp, f"{prefix}{f.name}.", f.metadata.get("exclude", ()))
        else:
            yield f"{prefix}{f.name}", f, tp


def add_options(parser: argparse.ArgumentParser, cls: type, defaults: Any = None) -> None:
    """Add one argument per command-line field of `cls` (see the module docstring). `defaults`: an
    instance whose values the help shows (default: the class defaults)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for dest, f, tp in _leaves(cls):
        meta = f.metadata
        default = _lookup(defaults, dest) if defaults is not None else _default_of(f)
        target = parser
        if "." in dest:  # a nested config's options are listed under its own heading
            head = dest.rsplit(".", 1)[0]
            if head not in groups:
                groups[head] = parser.add_argument_group(head, _group_help(cls, head))
            target = groups[head]
        _add_one(target, dest, f.name, meta, tp, default)


def _group_help(cls: type, path: str) -> str:
    for name in path.split("."):
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        cls = _strip_optional(_hints(cls)[name])
    return f.metadata.get("help", "")


def _add_one(parser, dest: str, name: str, meta: dict, tp: Any, default: Any) -> None:
    flag = meta["flag"] or name.replace("_", "-")
    help_text = meta["help"]
    if meta["positional"]:
        kwargs: dict[str, Any] = {"metavar": meta["metavar"] or name.upper(), "default": argparse.SUPPRESS}
        if meta["nargs"]:
            kwargs["nargs"] = meta["nargs"]
        if typing.get_origin(tp) is list and not meta["nargs"]:
            kwargs["nargs"] = "*"
        if meta["parse"]:
            kwargs["type"] = meta["parse"]
        shown = _with_default(help_text, default) if meta["nargs"] in ("?", "*") else help_text
        parser.add_argument(dest, help=shown, **kwargs)
        return
    if tp is bool:
        if default is True:
            parser.add_argument(f"--{meta['flag'] or 'no-' + flag}", dest=dest, action="store_false",
                                default=argparse.SUPPRESS, help=f"turn off: {help_text}")  # fmt: skip
        else:
            parser.add_argument(f"--{flag}", dest=dest, action="store_true", default=argparse.SUPPRESS,
                                help=help_text)  # fmt: skip
        return
    kwargs = {"dest": dest, "default": argparse.SUPPRESS, "metavar": meta["metavar"] or name.upper()}
    if meta["choices"] or typing.get_origin(tp) is Literal:
        kwargs["metavar"] = meta["metavar"]  # argparse lists the choices
    if default is _MISSING:
        kwargs["required"] = True
    if meta["nargs"]:
        kwargs["nargs"] = meta["nargs"]
    if meta.get("const") is not None:
        kwargs["const"] = meta["const"]
    choices = meta["choices"] or (list(typing.get_args(tp)) if typing.get_origin(tp) is Literal else None)
    if choices:
        kwargs["choices"] = choices
    kwargs["type"] = meta["parse"] or _parser_for(tp)
    parser.add_argument(f"--{flag}", help=_with_default(help_text, default), **kwargs)


def _with_default(help_text: str, default: Any) -> str:
    """The help text and the default, unless the text already says what the default is."""
    if "(default" in help_text:
        return help_text
    return f"{help_text} ({'required' if default is _MISSING else f'default: {_show(default)}'})"


def _parser_for(tp: Any) -> Callable[[str], Any]:
    if typing.get_origin(tp) is Literal:
        return str
    if tp in (int, float, str):
        return tp
    if typing.get_origin(tp) in (list, tuple) and typing.get_args(tp)[0] in (int, float):
        kind = typing.get_args(tp)[0]
        return lambda text: [_number(v, kind, lambda _: True, f"comma-separated {kind.__name__}s")
                             for v in text.split(",")]  # fmt: skip
    if typing.get_origin(tp) in (list, tuple):
        return lambda text: [v for v in text.split(",") if v]
    raise TypeError(f"no command-line parser for {tp!r}: give the field parse=")


# ---------------------------------------------------------------------------------- reading them back
def given(namespace: argparse.Namespace) -> dict[str, Any]:
    """The dotted-dest options the user actually gave (the others are SUPPRESSed, hence absent)."""
    return dict(vars(namespace))


def _lookup(obj: Any, dest: str) -> Any:
    for part in dest.split("."):
        obj = getattr(obj, part)
    return obj


def parse_into(base: Any, values: dict[str, Any] | argparse.Namespace) -> Any:
    """A copy of config `base` with the command-line `values` (dotted dests) applied; the config's
    `__post_init__` checks the result. Keys that are not fields of `base` are ignored (the command's
    own options)."""
    if isinstance(values, argparse.Namespace):
        values = given(values)
    changes: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(base)}
    for name, f in names.items():
        if f.metadata.get("nested"):
            sub = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{name}.")}
            if sub:
                changes[name] = parse_into(getattr(base, name), sub)
        elif name in values:
            changes[name] = values[name]
    return dataclasses.replace(base, **changes) if changes else base


def build(cls: type, values: dict[str, Any] | argparse.Namespace) -> Any:
    """Config `cls` from command-line `values` (dotted dests), its defaults elsewhere; for configs with
    required fields, which have no default instance for `parse_into` to start from."""
    if isinstance(values, argparse.Namespace):
        values = given(values)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("nested"):
            sub = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f"{f.name}.")}
            kwargs[f.name] = build(_strip_optional(_hints(cls)[f.name]), sub)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def from_dict(cls: type, data: dict) -> Any:
    """Build config `cls` from a JSON dict (nested configs included); unknown keys are an error that
    names them, so a misspelt key in a saved config is never silently ignored."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        tp = _strip_optional(hints[key])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            # A config with its own reader (e.g. one that accepts files of earlier versions) uses it.
            value = tp.from_dict(value) if hasattr(tp, "from_dict") else from_dict(tp, value)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    """A config as plain JSON types (tuples become lists)."""
    return json_ready(dataclasses.asdict(cfg))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def options_markdown(parser: argparse.ArgumentParser, title: str) -> str:
    """One command's options as a Markdown table (the generated CLI reference, docs/cli.md)."""
    rows = []
    for action in parser._actions:  # argparse keeps no public list of its actions
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = ", ".join(action.option_strings) or action.metavar or action.dest
        text = (action.help or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {text} |")
    head = f"### `{title}`\n\n{(parser.description or '').strip()}\n"
    return head + ("\n| option | what it does |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else "")
