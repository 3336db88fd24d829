"""Building LeRobot's environment: a disk too small for it is refused before pip starts."""

from __future__ import annotations

import pytest

from embodia.cli import main
from embodia.policy import lerobot_env
from embodia.policy.lerobot_env import NotEnoughSpace, build_env, check_free_space


def test_free_space_is_checked_against_the_need(tmp_path):
    check_free_space(tmp_path, needed=1)
    with pytest.raises(NotEnoughSpace, match="GB free, the LeRobot environment needs about"):
        check_free_space(tmp_path, needed=10**18)


def test_a_full_disk_fails_before_anything_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(lerobot_env.check_free_space, "__defaults__", (10**18,))
    target = tmp_path / "env"
    with pytest.raises(NotEnoughSpace):
        build_env(target)
    assert not target.exists() and not (tmp_path / "env.partial").exists()
    # through the CLI: an error line and exit code 2, no traceback
    assert main(["lerobot", "setup", "--env", str(target)]) == 2
    assert not target.exists()
