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
