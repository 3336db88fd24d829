"""The checkpoints shipped inside the package: loadable, small, and saying how they were made.
(Their quality is measured by the benchmarks, not asserted here.)"""

from __future__ import annotations

from embodia.policy.policy import BASE_DIR, METAWORLD_MT10_DIR, METAWORLD_MT50_DIR, Policy

MB = 1024 * 1024


def test_shipped_checkpoints_load_and_fit_the_size_budget():
    total = 0
    for folder, embodiment, cameras in (
        (BASE_DIR, "so101", ["observation.images.front", "observation.images.wrist"]),
        (METAWORLD_MT10_DIR, "sawyer", ["observation.images.corner2"]),
        (METAWORLD_MT50_DIR, "sawyer", ["observation.images.corner2"]),
    ):
        total += sum(p.stat().st_size for p in folder.iterdir())
        policy = Policy.from_pretrained(folder)
        assert policy.embodiment == embodiment
        assert policy.embodiments[embodiment].cameras == cameras
        assert 1 <= policy.n_action_steps <= policy.chunk_size
        assert policy.metadata["recipe"]["name"] and policy.metadata["evaluation"]
    assert total <= 30 * MB  # the budget for what ships inside the package
