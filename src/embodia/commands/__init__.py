"""Every `embodia` subcommand: its options (a dataclass; the CLI is generated from it, see
embodia.configs) and the function that runs it. `cli.py` turns this table into the argument parser."""

from __future__ import annotations

from embodia.commands.act import (
    AverageOptions,
    DemoOptions,
    EvalOptions,
    RunOptions,
    cmd_average,
    cmd_demo,
    cmd_eval,
    cmd_run,
)
from embodia.commands.arm import (
    CalibrateOptions,
    EmulatorOptions,
    TeleopOptions,
    cmd_calibrate,
    cmd_emulator,
    cmd_teleop,
)
from embodia.commands.common import Command, console
from embodia.commands.data import (
    ConvertUnitsOptions,
    DeleteOptions,
    DoctorDataOptions,
    InfoOptions,
    MergeOptions,
    RecordOptions,
    SplitOptions,
    StatsOptions,
    TasksOptions,
    cmd_dataset_convert_units,
    cmd_dataset_delete,
    cmd_dataset_info,
    cmd_dataset_merge,
    cmd_dataset_split,
    cmd_dataset_stats,
    cmd_doctor_data,
    cmd_record,
    cmd_tasks,
)
from embodia.commands.data_export import ExportV21Options, cmd_export_v21
from embodia.commands.hub import DatasetPushOptions, PolicyPushOptions, cmd_dataset_push, cmd_policy_push
from embodia.commands.lerobot import InspectOptions, SetupOptions, cmd_lerobot_inspect, cmd_lerobot_setup
from embodia.commands.recipe import RecipeListOptions, RecipeRunOptions, cmd_recipe_list, cmd_recipe_run
from embodia.commands.serve import McpOptions, ServeOptions, ViewOptions, cmd_mcp, cmd_serve, cmd_view
from embodia.commands.train import (
    DoctorTrainOptions,
    TeachConfig,
    TrainOptions,
    base_config,
    cmd_doctor_train,
    cmd_teach,
    cmd_train,
    presets_help,
)
from embodia.recipes.teach import teach_defaults

_EXIT = "Exit status: 0 when no check FAILs (WARN allowed), 1 when any check FAILs, 2 on bad arguments."


def _command(name: str, options: type, run, **kw) -> Command:
    """A leaf command whose help is the first line of its function's docstring."""
    doc = (run.__doc__ or "").strip()
    return Command(name, doc.split("\n")[0], options, run, description=kw.pop("description", doc), **kw)


COMMANDS: tuple[Command, ...] = (
    _command("demo", DemoOptions, cmd_demo),
    _command("run", RunOptions, cmd_run),
    _command("record", RecordOptions, cmd_record),
    Command("dataset", "Inspect and edit LeRobot datasets; edits always write a new dataset.", subcommands=(
        _command("info", InfoOptions, cmd_dataset_info),
        _command("delete-episodes", DeleteOptions, cmd_dataset_delete),
        _command("split", SplitOptions, cmd_dataset_split),
        _command("merge", MergeOptions, cmd_dataset_merge),
        _command("recompute-stats", StatsOptions, cmd_dataset_stats),
        _command("convert-units", ConvertUnitsOptions, cmd_dataset_convert_units),
        _command("export-v21", ExportV21Options, cmd_export_v21),
        _command("push", DatasetPushOptions, cmd_dataset_push),
    )),
    Command("doctor", "Find what makes a policy converge and then fail: `doctor data`, `doctor train`.",
            description=_EXIT, subcommands=(
        _command("data", DoctorDataOptions, cmd_doctor_data),
        _command("train", DoctorTrainOptions, cmd_doctor_train,
                 base=lambda given: DoctorTrainOptions(train=base_config(given))),
    )),
    _command("train", TrainOptions, cmd_train, base=lambda given: TrainOptions(train=base_config(given)),
             description=f"{(cmd_train.__doc__ or '').strip()}\n\n{presets_help()}"),
    _command("teach", TeachConfig, cmd_teach, base=teach_defaults),
    _command("eval", EvalOptions, cmd_eval),
    _command("average", AverageOptions, cmd_average),
    Command("policy", "Share embodia checkpoints: `policy push` (any command pulls a Hub id: owner/name).",
            subcommands=(_command("push", PolicyPushOptions, cmd_policy_push),)),
    _command("tasks", TasksOptions, cmd_tasks),
    Command("lerobot", "Run LeRobot's policies (ACT, Diffusion, SmolVLA, pi0 ...) in embodia: their environment.",
            subcommands=(
        _command("setup", SetupOptions, cmd_lerobot_setup),
        _command("inspect", InspectOptions, cmd_lerobot_inspect),
    )),
    Command("recipe", "The checked-in recipes that rebuild the shipped policies.", subcommands=(
        _command("list", RecipeListOptions, cmd_recipe_list),
        _command("run", RecipeRunOptions, cmd_recipe_run),
    )),
    _command("calibrate", CalibrateOptions, cmd_calibrate),
    _command("emulator", EmulatorOptions, cmd_emulator),
    _command("teleop", TeleopOptions, cmd_teleop),
    _command("serve", ServeOptions, cmd_serve),
    _command("mcp", McpOptions, cmd_mcp),
    _command("view", ViewOptions, cmd_view),
)  # fmt: skip

__all__ = ["COMMANDS", "Command", "console"]
