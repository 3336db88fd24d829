"""What every command shares: the console, the `Command` registry entry, and loading a policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

console = Console()

CHECKPOINT_HELP = (
    "a checkpoint folder (embodia's, or a LeRobot pretrained_model folder) or a shipped policy's name: "
    "base, metaworld_mt10, metaworld_mt50"
)


@dataclass(frozen=True)
class Command:
    """One `embodia` subcommand: its options are the fields of `options` (a dataclass, see
    embodia.configs); `run(options) -> exit status`. `base(given)`, when set, returns the config the
    given options apply to (e.g. a training preset), instead of the dataclass's defaults."""

    name: str
    help: str
    options: type | None = None
    run: Callable[[Any], int] | None = None
    base: Callable[[dict[str, Any]], Any] | None = None
    description: str | None = None
    subcommands: tuple[Command, ...] = ()


def load_task_files_of(options) -> None:
    """Load the task files an options object names (its own `task_files` or a nested config's) before the
    command runs, and have every run manifest record them."""
    files = list(_task_files(options))
    if not files:
        return
    from embodia.runs import note_task_files
    from embodia.tasks import load_task_file, task_files_record

    for path in files:
        load_task_file(path)
    note_task_files(task_files_record())


def _task_files(obj):
    import dataclasses

    if not dataclasses.is_dataclass(obj):
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name == "task_files" and isinstance(value, list):
            yield from value
        elif dataclasses.is_dataclass(value):
            yield from _task_files(value)
