"""`embodia dataset export-v21`: a v3.0 dataset as LeRobotDataset v2.1, for openpi and LeRobot <= 0.3."""

from __future__ import annotations

from dataclasses import dataclass

from embodia.commands.common import console
from embodia.configs import opt


@dataclass(frozen=True)
class ExportV21Options:
    src: str = opt(help="the v3.0 dataset folder to export", positional=True)
    out: str = opt(help="folder of the new v2.1 dataset (must not exist, or be empty)", positional=True)


def cmd_export_v21(o: ExportV21Options) -> int:
    """Export a v3.0 dataset as LeRobotDataset v2.1, the layout openpi and LeRobot <= 0.3 read.
    One parquet file per episode and one mp4 per episode and camera, cut from the v3.0 videos without
    re-encoding; jsonl metadata with per-episode stats as LeRobot 0.3 writes them; SRC is not modified.
    Exit status 2, with nothing written, when SRC is not v3.0 or OUT exists and is not empty."""
    from embodia.data.export_v21 import export_v21

    with console.status("exporting ...") as status:
        out = export_v21(
            o.src, o.out, progress=lambda n, total: status.update(f"exporting: episode {n}/{total}")
        )
    console.print(f"written: [bold]{out}[/] (LeRobotDataset v2.1)")
    return 0
