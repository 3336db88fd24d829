"""Wall time of an expert recording made locally and on Ray (`embodia record --ray local`), and whether
the two datasets are equal in their non-video columns.

    python benchmarks/ray_record.py [--tasks tabletop] [--episodes 40] [--modes local1,local2,ray1,ray2]

Modes: `localN` is `embodia record`'s local path with N env subprocesses; `rayN` starts a private Ray
cluster of N CPUs on this machine (`address="local"`) and runs N actors, each with one env and the
experts, the driver committing their episodes in seed order. Both write the same dataset (96 px,
AV1 video); the Ray wall time includes starting the cluster and the actors. Overhead per episode =
(ray1 - local1) / episodes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from embodia.cluster import import_ray
from embodia.data.record import RecordConfig, record


def run_mode(mode: str, args, out: Path) -> tuple[float, dict]:
    """One recording in `mode`: (wall seconds, its non-video columns)."""
    n = int(mode.removeprefix("local").removeprefix("ray"))
    cfg = RecordConfig(tasks=args.tasks, episodes=args.episodes, num_envs=n, seed=args.seed,
                       ray="local" if mode.startswith("ray") else None)  # fmt: skip
    root = out / mode
    t0 = time.perf_counter()
    result = record(cfg, root, progress=None)
    wall = time.perf_counter() - t0
    if mode.startswith("ray"):
        import_ray().shutdown()
    frames = pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pydict()
    print(f"{mode:>7}: {result.saved}/{result.attempted} episodes, {result.frames} frames in {wall:7.1f} s "
          f"({wall / result.attempted:.2f} s/episode)", flush=True)  # fmt: skip
    return wall, frames


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="tabletop")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="local1,local2,ray1,ray2")
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    results: dict[str, tuple[float, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="embodia-ray-record-bench-") as tmp:
        for mode in modes:
            results[mode] = run_mode(mode, args, Path(tmp))
    reference = results.get("local1") or results.get("local2")
    if reference is not None:
        for mode in (m for m in modes if m.startswith("ray")):
            print(
                f"{mode} dataset equals the local one in every non-video column: {results[mode][1] == reference[1]}"
            )
        if "ray1" in results and "local1" in results:
            n = args.episodes
            print(
                f"Ray overhead per episode (ray1 - local1) / {n}: {(results['ray1'][0] - results['local1'][0]) / n:+.2f} s"
            )


if __name__ == "__main__":
    main()
