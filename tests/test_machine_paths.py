"""No file of the repository names a folder of somebody's machine: a home folder, a scratch or work
disk, the system's temporary folder. Such a path works on one machine only, and it says where a
developer kept things, which is nobody else's business. Tests make temporary folders with `tmp_path`;
documentation and examples use relative paths or placeholders (DATASET, OUT).

Every text file git tracks, or would track (untracked but not ignored), is scanned; binaries are
skipped. Without git (an unpacked sdist) the test skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# An absolute path that starts at one of these folders, not preceded by a word, a dot or a slash (so
# URLs and relative paths such as runs/tmp/ do not count).
ROOTS = ("work", "home", "tmp", "Users", "root", "mnt", "private", "scratch", "var/folders")
MACHINE_PATH = re.compile(
    r"(?<![\w.~%/\\-])/(?:" + "|".join(ROOTS) + r")/|\b[A-Za-z]:\\(?:Users|Documents and Settings)\\"
)


def repository_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [REPO / name for name in sorted(set(listed.split("\0"))) if name and (REPO / name).is_file()]


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


def test_the_pattern_finds_machine_paths():
    for text in ("/" + "work/data/x", "see /" + "home/me/ds", '"/' + 'tmp/out"', "C:\\" + "Users\\me"):
        assert MACHINE_PATH.search(text), text
    for text in ("runs/tmp/x", "https://example.com/home/x", "./work/x", "/usr/bin/chromium", "tmp_path"):
        assert not MACHINE_PATH.search(text), text


def test_no_file_names_a_path_of_a_machine():
    found = []
    for path in repository_files():
        text = text_of(path)
        for n, line in enumerate((text or "").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()[:120]}")
    assert not found, "absolute paths of a machine (use relative paths or placeholders):\n" + "\n".join(found)
