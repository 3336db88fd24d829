"""Run folders: unique, and named within what file systems accept."""

from __future__ import annotations

from embodia.runs import MAX_NAME, new_run_dir


def test_long_names_are_shortened_but_stay_distinct(tmp_path):
    tasks = ",".join(f"task-number-{i}" for i in range(40))  # e.g. `embodia record metaworld:<36 tasks>`
    a = new_run_dir("record", tasks, root=tmp_path)
    b = new_run_dir("record", tasks[:-1], root=tmp_path)
    for path in (a, b):
        assert path.is_dir() and len(path.name) <= len("20261126-072505-") + MAX_NAME
    assert a.name.split("-")[-1] != b.name.split("-")[-1]  # different lists, different digests
    short = new_run_dir("record", "touch,pick", root=tmp_path)
    assert short.name.endswith("-touch-pick")
