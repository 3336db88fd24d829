"""The eval's summary of first grasp attempts: medians per task and outcome, and their one-line text."""

from __future__ import annotations

from embodia.eval.rollout import EpisodeResult, _progress_fields
from embodia.eval.run import grasp_medians, grasp_text


def _episode(task: str, success: bool, grasp: dict | None) -> EpisodeResult:
    return EpisodeResult(0, task, task, "", 0, success, 10, 1, grasp=grasp)


def test_medians_per_task_and_outcome():
    eps = [
        _episode("pick", True, {"offset_cm": 0.8, "height_cm": 0.1, "jaw_deg": 12.0}),
        _episode("pick", True, {"offset_cm": 1.2, "height_cm": -0.1, "jaw_deg": 20.0}),
        _episode("pick", False, {"offset_cm": 1.6, "height_cm": 2.1, "jaw_deg": 19.0}),
        _episode("pick", False, None),  # never closed near the block: not an attempt
        _episode("stack", False, {"offset_cm": 2.0, "height_cm": 2.0}),  # no yaw known
        _episode("touch", True, None),
    ]
    medians = grasp_medians(eps)
    assert medians == {
        "pick": {
            "succeeded": {"attempts": 2, "offset_cm": 1.0, "height_cm": 0.0, "jaw_deg": 16.0},
            "failed": {"attempts": 1, "offset_cm": 1.6, "height_cm": 2.1, "jaw_deg": 19.0},
        },
        "stack": {"failed": {"attempts": 1, "offset_cm": 2.0, "height_cm": 2.0}},
    }
    assert (
        grasp_text(medians["pick"])
        == "succeeded 2: 1.0 cm off, jaws 16 deg; failed 1: 1.6 cm off, jaws 19 deg"
    )
    assert grasp_text(medians["stack"]) == "failed 1: 2.0 cm off"
    assert grasp_text({}) == ""


def test_progress_fields_keep_only_numeric_grasp_measures():
    fields = _progress_fields(
        {"stages": ["reached"], "failure": "landed on block", "grasp": {"offset_cm": 1, "note": "x"}}, False
    )
    assert fields["grasp"] == {"offset_cm": 1.0} and fields["failure"] == "landed on block"
    assert _progress_fields({"stages": [], "failure": None, "grasp": "bad"}, True)["grasp"] is None
    assert _progress_fields({"stages": []}, True)["grasp"] is None
