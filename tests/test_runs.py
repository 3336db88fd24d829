"""Run folders: unique, and named within what file systems accept."""

from __future__ import annotations

import os

import torch

from embodia.policy.checkpoint import write_folder
from embodia.runs import MAX_NAME, atomic_write_text, new_run_dir


def test_long_names_are_shortened_but_stay_distinct(tmp_path):
    tasks = ",".join(f"task-number-{i}" for i in range(40))  # e.g. `embodia record metaworld:<36 tasks>`
    a = new_run_dir("record", tasks, root=tmp_path)
    b = new_run_dir("record", tasks[:-1], root=tmp_path)
    for path in (a, b):
        assert path.is_dir() and len(path.name) <= len("20261126-072505-") + MAX_NAME
    assert a.name.split("-")[-1] != b.name.split("-")[-1]  # different lists, different digests
    short = new_run_dir("record", "touch,pick", root=tmp_path)
    assert short.name.endswith("-touch-pick")


def test_checkpoints_and_atomic_writes_get_ordinary_permissions(tmp_path):
    """safetensors and mkstemp create 0600 files; published ones must read like ordinary files."""
    mask = os.umask(0)
    os.umask(mask)
    folder = write_folder(
        tmp_path / "ckpt", {"model.safetensors": {"w": torch.zeros(2)}, "config.json": {"a": 1}}
    )
    atomic_write_text(tmp_path / "notes.txt", "hello\n")
    files = [*folder.iterdir(), tmp_path / "notes.txt"]
    assert {f.stat().st_mode & 0o777 for f in files} == {0o666 & ~mask}
