"""The dataset card pushed with a dataset (`embodia dataset push`), in LeRobot's conventions: the Hub's
metadata (license, the `LeRobot` tag, `robotics`, the parquet files as the default config), then what a
user needs before downloading: robot, rate, size, tasks, the codebase version, how it was made (the
recipe stage whose manifest sits beside the folder, or `embodia record`), and meta/info.json."""

from __future__ import annotations

import json
from pathlib import Path

from embodia.data.edit import info
from embodia.data.format import INFO_PATH, read_json
from embodia.data.record import RECORD_META
from embodia.hub import DATASET_TAG, card_text

STAGE_MANIFEST = "stage.json"  # a recipe stage's manifest, one folder above the dataset it wrote


def dataset_card(root: str | Path, repo_id: str, license: str = "apache-2.0") -> str:
    summary = info(root)
    root = Path(root)
    tags = ["LeRobot", "embodia", summary["robot_type"]] + (
        ["so101"] if "so101" in summary["robot_type"] else []
    )
    card_data = {
        "license": license,
        "tags": list(dict.fromkeys(t for t in tags if t)),
        "task_categories": ["robotics"],
        "configs": [{"config_name": "default", "data_files": "data/*/*.parquet"}],
    }
    lengths = summary["episode_length"] or {"min": 0, "max": 0, "mean": 0}
    tasks = "\n".join(f"| {t} | {n} |" for t, n in summary["tasks"].items())
    body = f"""
# {repo_id}

A robot-learning dataset in the LeRobotDataset {summary["version"]} format, made with embodia. LeRobot (0.4 and later) loads it with
`LeRobotDataset("{repo_id}")`; embodia with any command that takes a dataset, for example
`embodia dataset info {repo_id}`. The repository is tagged `{DATASET_TAG}`, the codebase version
LeRobot loads.

- **Robot type**: {summary["robot_type"]}
- **Rate**: {summary["fps"]} frames per second
- **Episodes**: {summary["episodes"]} ({summary["frames"]} frames, {summary["seconds"]:.1f} s; episode length
  {lengths["min"]} to {lengths["max"]} frames, mean {lengths["mean"]:.1f})
- **Cameras**: {", ".join(summary["cameras"]) or "none"}
- **Codebase version**: {summary["version"]}
- **License**: {license}

## Tasks

| task | episodes |
|---|---|
{tasks}

## How it was made

{_provenance(root)}

## Dataset structure

[meta/info.json](meta/info.json):
```json
{json.dumps(read_json(root / INFO_PATH), indent=2)}
```
"""
    return card_text(card_data, body)


def _provenance(root: Path) -> str:
    """The recipe stage that wrote the folder (its manifest), else the recorder's note, else unknown."""
    manifest = root.parent / STAGE_MANIFEST
    if manifest.exists():
        m = read_json(manifest)
        config = json.dumps(m.get("config", {}), indent=2)
        return (
            f"Written by stage `{m.get('stage')}` ({m.get('kind')}) of the embodia recipe "
            f"`{m.get('recipe')}` (scale `{m.get('scale')}`) at commit `{m.get('git_sha')}`; "
            f"`embodia recipe run {m.get('recipe')}` rebuilds it. The stage's config:\n\n"
            f"```json\n{config}\n```"
        )
    if (root / RECORD_META).exists():
        note = read_json(root / RECORD_META)
        files = note.get("task_files") or []
        return (
            "Recorded in simulation by `embodia record` (scripted experts), episodes seeded from its "
            f"seed up to {note.get('next_seed')}" + (f"; task files: {files}." if files else ".")
        )
    return "Not written by an embodia recipe or recorder: no record of how it was made was found."
