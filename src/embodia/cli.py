"""`embodia` command line. Thin: parses arguments, calls the library, prints where outputs went."""

from __future__ import annotations

import argparse
import sys

from embodia.commands import (
    cmd_average,
    cmd_dataset,
    cmd_demo,
    cmd_doctor,
    cmd_eval,
    cmd_mcp,
    cmd_record,
    cmd_run,
    cmd_serve,
    cmd_tasks,
    cmd_train,
    cmd_view,
    console,
)


def _number(text: str, kind: type, ok, expected: str):
    """Parse an argument of type `kind` that must satisfy `ok`; argparse shows `expected` otherwise."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v > 0, "a positive integer")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a positive number")


def _number_at_least_zero(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def _probability(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v <= 1, "a probability between 0 and 1")


def _positive_floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive numbers, got {text!r}") from None
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embodia", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help=cmd_demo.__doc__)
    demo.add_argument("--family", default=None, help="only this task family")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    demo.add_argument("--max-steps", type=_positive_int, default=None, help="cap each episode's steps")
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser("run", help=cmd_run.__doc__)
    run.add_argument("instruction", help='e.g. "put the red block in the bowl"')
    run.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--max-steps", type=_positive_int, default=None)
    run.set_defaults(func=cmd_run)

    rec = sub.add_parser("record", help=cmd_record.__doc__)
    rec.add_argument(
        "tasks",
        nargs="?",
        default="tabletop",
        help="'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'",
    )
    rec.add_argument("--episodes", type=_positive_int, default=50)
    rec.add_argument("--num-envs", type=_positive_int, default=2)
    rec.add_argument("--image-size", type=_positive_int, default=96)
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument(
        "--out", default=None, help="dataset folder (default: ./embodia_runs/record/<time>-<tasks>/dataset)"
    )
    rec.add_argument("--resume", action="store_true", help="append to the dataset at --out")
    rec.add_argument(
        "--commit-every",
        type=_positive_int,
        default=10,
        metavar="N",
        help="commit episodes to disk N at a time (default 10): a crash loses at most N; 1 commits each "
        "episode, but rewrites the growing video files every time",
    )
    rec.add_argument(
        "--keep-failures", action="store_true", help="keep failed episodes, with next.success/next.done"
    )
    rec.add_argument(
        "--split", choices=["train", "heldout", "all"], default="train", help="instruction templates"
    )
    rec.add_argument(
        "--video",
        choices=["av1", "h264-444"],
        default="av1",
        help="video encoding: av1 (LeRobot's default, yuv420p) or h264-444 (full colour resolution)",
    )
    rec.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        help="recovery data: std of a smooth perturbation of the executed arm action, in action units "
        "(SO-101: radians, e.g. 0.02); the dataset keeps the expert's clean action (default 0: off)",
    )
    rec.add_argument(
        "--approach-error",
        type=float,
        default=0.0,
        metavar="M",
        help="recovery data (tabletop): each grasp's or push's approach is executed up to M metres sideways "
        "(e.g. 0.02) with the wrist turned up to --approach-roll degrees, the error shrinking to nothing "
        "as the tool comes down; the dataset keeps the expert's clean action (default 0: off)",
    )
    rec.add_argument(
        "--approach-roll",
        type=float,
        default=25.0,
        metavar="DEG",
        help="with --approach-error or --carry-error: the largest wrist-roll error, degrees (default 25)",
    )
    rec.add_argument(
        "--carry-error",
        type=float,
        default=0.0,
        metavar="M",
        help="recovery data for stack and place (tabletop): a held block is carried up to M metres off "
        "(e.g. 0.02), the error gone before it is set down; the dataset keeps the expert's action",
    )
    rec.add_argument(
        "--stroke-error",
        type=float,
        default=0.0,
        metavar="M",
        help="recovery data for push (tabletop): the stroke is executed up to M metres off the expert's "
        "line (e.g. 0.02: beside it, behind or ahead); the expert follows the block and pushes on if it "
        "fell short; the dataset keeps the expert's action",
    )
    rec.set_defaults(func=cmd_record)

    tr = sub.add_parser("train", help=cmd_train.__doc__)
    tr.add_argument("datasets", nargs="*", help="LeRobotDataset folders (v3.0 or v2.1)")
    tr.add_argument(
        "--preset",
        default="default",
        help="tiny | default | base | base_gpu | metaworld | metaworld_gpu | finetune",
    )
    tr.add_argument("--steps", type=_positive_int)
    tr.add_argument(
        "--minutes",
        type=_positive_float,
        help="train for this long in all (data loading included), replacing --steps: the step rate is "
        "measured on the first 20 steps and the step count (and the schedule) set to what fits",
    )
    tr.add_argument("--batch-size", type=_positive_int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--save-every", type=_positive_int)
    tr.add_argument("--head", choices=["flow", "l1"], help="action head (default: the preset's, flow)")
    tr.add_argument(
        "--backbone",
        help="vision: hf:<local folder> starts from a pretrained transformers vision model (config.json + "
        "model.safetensors; nothing is downloaded) instead of the built-in CNN",
    )
    tr.add_argument(
        "--weights",
        type=_positive_floats,
        help="sampling weight per dataset, comma-separated in the order given, e.g. 1,1 to co-train a small "
        "new dataset with a large one (default: in proportion to their frames)",
    )
    tr.add_argument(
        "--paraphrase",
        type=_probability,
        metavar="P",
        help="swap each sample's instruction for another phrasing of the same tabletop task with "
        "probability P (0-1; default: the preset's, 0), so the policy follows meaning, not exact strings",
    )
    tr.add_argument(
        "--paraphrase-carriers",
        action="store_true",
        help="with --paraphrase: also swap in phrasings wrapped in carrier words ('please ...', '... now')",
    )
    tr.add_argument(
        "--word-dropout",
        type=_probability,
        metavar="P",
        help="hide each word of an instruction from the policy with probability P during training (e.g. "
        "0.15), so no single word carries the task: helps with verbs it has never seen",
    )
    tr.add_argument(
        "--sentence-mix",
        type=_probability,
        metavar="P",
        help="with --paraphrase: move each sample's sentence vector (which drives FiLM in the vision encoder) "
        "part of the way toward another phrasing of its task with probability P, so unseen phrasings do not "
        "disturb what the policy sees",
    )
    tr.add_argument(
        "--sentence-noise",
        type=_number_at_least_zero,
        metavar="S",
        help="add S x a random unit vector to each sentence vector during training (0.5: cosine ~0.9)",
    )
    tr.add_argument("--init-from", help="checkpoint folder to fine-tune")
    tr.add_argument("--freeze-encoders", action="store_true", help="with --init-from: keep vision/language")
    tr.add_argument("--no-augment", action="store_true")
    tr.add_argument("--cache-dir", help="decoded-frame cache (default ~/.cache/embodia/frames)")
    tr.add_argument(
        "--save-instructions",
        metavar="FILE",
        help="write the sentence encoder's output for every instruction this run would use (tasks and the "
        "phrasings the language flags add) to FILE and stop, without training: for --instructions",
    )
    tr.add_argument(
        "--instructions",
        metavar="FILE",
        help="read instruction encodings from FILE (written by --save-instructions) instead of running the "
        "sentence encoder: trains on a machine without its weights or internet",
    )
    tr.add_argument("--out", help="run folder (default ./embodia_runs/train/<time>-<preset>)")
    tr.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    tr.add_argument("--no-preflight", action="store_true", help="skip the training doctor's static checks")
    tr.set_defaults(func=cmd_train)

    dset = sub.add_parser("dataset", help=cmd_dataset.__doc__)
    dsub = dset.add_subparsers(dest="action", required=True)
    p = dsub.add_parser("info", help="summary of a dataset")
    p.add_argument("root")
    p.add_argument("--json", action="store_true")
    p = dsub.add_parser("delete-episodes", help="copy without the given episodes")
    p.add_argument("root")
    p.add_argument("--episodes", type=int, nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = dsub.add_parser(
        "split", help="shuffle episodes into named datasets, e.g. --fractions train=0.9,val=0.1"
    )
    p.add_argument("root")
    p.add_argument("--fractions", required=True)
    p.add_argument("--out", required=True, help="folder that receives one dataset per name")
    p.add_argument("--seed", type=int, default=0)
    p = dsub.add_parser("merge", help="concatenate datasets with the same features and fps")
    p.add_argument("roots", nargs="+")
    p.add_argument("--out", required=True)
    p = dsub.add_parser("recompute-stats", help="recompute stats from the data")
    p.add_argument("root")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write a corrected copy here")
    group.add_argument("--in-place", action="store_true", help="rewrite meta/stats.json of ROOT itself")
    dset.set_defaults(func=cmd_dataset)

    doc = sub.add_parser(
        "doctor",
        help=cmd_doctor.__doc__,
        description="Exit status: 0 when no check FAILs (WARN allowed), 1 when any check FAILs, 2 on bad arguments.",
    )
    targets = doc.add_subparsers(dest="target", required=True)
    p = targets.add_parser(
        "data",
        help="check a LeRobot dataset (timestamps, episodes, actions, cameras, tasks, stats)",
        description="Check a LeRobotDataset for data bugs; writes doctor.json and report.html. "
        "Exit status: 0 when no check FAILs (WARN allowed), 1 when any check FAILs or the dataset "
        "cannot be opened, 2 on bad arguments.",
    )
    p.add_argument("dataset", help="dataset folder (v3.0 or v2.1)")
    p.add_argument("--out", help="report folder (default ./embodia_runs/doctor/<time>-data)")
    p.add_argument(
        "--fix", metavar="OUT", help="write a copy without FAIL episodes and with idle ends trimmed"
    )
    p.add_argument("--no-video", action="store_true", help="skip decoding (camera checks are skipped)")
    p.add_argument(
        "--action-kind", choices=["joint_abs", "ee_delta"], help="override the inferred action kind"
    )
    p = targets.add_parser(
        "train",
        help="check a training setup: preflight, overfit probe, open-loop replay, closed-loop gap",
        description="Exit status: 0 with no FAIL finding, 1 with any.",
    )
    p.add_argument("datasets", nargs="+", help="the dataset(s) to train on")
    p.add_argument("--checkpoint", help="a trained checkpoint: compared with the data, replayed open-loop")
    p.add_argument("--preset", default="default", help="training preset whose configuration to check")
    p.add_argument("--steps", type=_positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument(
        "--suite", help="with --checkpoint: also evaluate closed-loop on this suite (e.g. pick,push)"
    )
    p.add_argument("--episodes", type=_positive_int, default=10, help="closed-loop episodes per task")
    p.add_argument("--no-overfit", action="store_true", help="skip the overfit probe (~1 minute)")
    p.add_argument("--out", help="report folder (default ./embodia_runs/doctor/<time>-train)")
    doc.set_defaults(func=cmd_doctor)

    tasks = sub.add_parser("tasks", help=cmd_tasks.__doc__)
    tasks.add_argument("--markdown", action="store_true", help="print docs/tasks.md")
    tasks.set_defaults(func=cmd_tasks)

    ev = sub.add_parser("eval", help=cmd_eval.__doc__)
    ev.add_argument(
        "checkpoint", help="checkpoint folder of a trained policy, or a policy server's URL (ws://host:port)"
    )
    ev.add_argument(
        "--api-key", default=None, help="API key of the policy server (with a URL; default $EMBODIA_API_KEY)"
    )
    ev.add_argument(
        "--suite",
        default="tabletop",
        help="'tabletop' (all families), families like 'pick,place', or 'metaworld:<task|group|list>'",
    )
    ev.add_argument(
        "--split", choices=["train", "heldout", "all"], default="train", help="instruction templates"
    )
    ev.add_argument("--episodes", type=_positive_int, default=50, help="episodes per task")
    ev.add_argument("--num-envs", type=_positive_int, default=2)
    ev.add_argument(
        "--replan-every", type=_positive_int, default=None, help="actions per chunk (default: the policy's)"
    )
    ev.add_argument(
        "--guided",
        action="store_true",
        help="inpaint each re-planned chunk toward the unexecuted rest of the previous one (real-time "
        "chunking's guidance), so re-planning corrects the plan instead of switching plans; needs "
        "--replan-every below the chunk size",
    )
    ev.add_argument(
        "--ensemble",
        type=_number_at_least_zero,
        default=None,
        metavar="COEFF",
        help="re-plan every step and execute ACT's temporal ensemble of the overlapping chunks, weights "
        "exp(-COEFF * age) from the oldest (ACT uses 0.01)",
    )
    ev.add_argument(
        "--flow-steps",
        type=_positive_int,
        default=None,
        help="Euler steps per chunk (default: the checkpoint's)",
    )
    ev.add_argument(
        "--noise-scale",
        type=_probability,
        default=None,
        help="the flow sampler's temperature, 0-1: 1 samples the learned distribution, 0 is deterministic "
        "(default: the checkpoint's)",
    )
    ev.add_argument("--videos", type=int, default=1, help="episodes filmed per task")
    ev.add_argument("--image-size", type=_positive_int, default=96)
    ev.add_argument("--max-steps", type=_positive_int, default=None, help="override the step limit")
    ev.add_argument("--seed", type=int, default=0, help="offset of the evaluation seeds (base 10,000,000)")
    ev.add_argument("--out", default=None, help="output folder (default: ./embodia_runs/eval/<time>-<suite>)")
    ev.set_defaults(func=cmd_eval)

    avg = sub.add_parser("average", help=cmd_average.__doc__)
    avg.add_argument("checkpoints", nargs="+", help="two or more checkpoint folders descended from one base")
    avg.add_argument(
        "--weights",
        type=_numbers,
        default=None,
        help="comma-separated mixing weights, >= 0, summing to 1 (default: uniform; WiSE-FT uses 0.5,0.5)",
    )
    avg.add_argument("--out", required=True, help="folder for the averaged checkpoint")
    avg.set_defaults(func=cmd_average)

    srv = sub.add_parser("serve", help=cmd_serve.__doc__)
    srv.add_argument("checkpoint", nargs="?", default=None, help="policy folder (default: the shipped base)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind; non-loopback needs --api-key")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--api-key", default=None, help="required from clients (default: $EMBODIA_API_KEY)")
    srv.add_argument("--max-message-mb", type=float, default=16.0, help="largest accepted message, MiB")
    srv.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    srv.set_defaults(func=cmd_serve)

    mcp = sub.add_parser("mcp", help=cmd_mcp.__doc__)
    mcp.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    mcp.add_argument("--policy", default=None, metavar="URL", help="a policy server instead (ws://host:port)")
    mcp.add_argument(
        "--api-key", default=None, help="API key of the policy server (default $EMBODIA_API_KEY)"
    )
    mcp.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP transports: address to bind (loopback only)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP transports: port (path /mcp or /sse)")
    mcp.add_argument("--seed", type=int, default=0, help="seed of the first scene")
    mcp.add_argument(
        "--task", default=None, help="instruction of the first scene (default: drawn from the seed)"
    )
    mcp.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="camera size without a policy (default 96; a policy sets its own)",
    )
    mcp.add_argument(
        "--out", default=None, help="folder for do() videos (default ./embodia_runs/mcp/<time>-session)"
    )
    mcp.add_argument("--no-video", action="store_true", help="do not write do() videos")
    mcp.set_defaults(func=cmd_mcp)
    view = sub.add_parser("view", help=cmd_view.__doc__)
    view.add_argument("path", nargs="?", default=".", help="folder to browse (default: the current one)")
    view.add_argument("--port", type=int, default=8765)
    view.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only: no auth)")
    view.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: say what was wrong, no traceback
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
