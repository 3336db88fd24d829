"""The eval's summary of how far off episodes were: medians per task, kind and outcome, and their text."""

from __future__ import annotations

from embodia.eval.rollout import EpisodeResult, _progress_fields
from embodia.eval.run import measure_medians
from embodia.sim.progress import measure_text


def _episode(task: str, success: bool, **measures) -> EpisodeResult:
    return EpisodeResult(0, task, task, "", 0, success, 10, 1, measures=measures)


def test_medians_per_task_kind_and_outcome():
    eps = [
        _episode("pick", True, grasp={"offset_cm": 0.8, "height_cm": 0.1, "jaw_deg": 12.0}),
        _episode("pick", True, grasp={"offset_cm": 1.2, "height_cm": -0.1, "jaw_deg": 20.0}),
        _episode("pick", False, grasp={"offset_cm": 1.6, "height_cm": 2.1, "jaw_deg": 19.0}),
        _episode("pick", False),  # never closed near the block: no grasp measured
        _episode("stack", False, grasp={"offset_cm": 2.0, "height_cm": 2.0}),  # no yaw known
        _episode("push", True, push={"slid_cm": 10.0, "off_deg": 4.0}),
        _episode("push", False, push={"slid_cm": 1.0}),  # barely moved: no direction
        _episode("push", False, push={"slid_cm": 5.0, "off_deg": 10.0}),
        _episode("touch", True),
    ]
    medians = measure_medians(eps)
    assert medians == {
        "pick": {
            "grasp": {
                "succeeded": {"episodes": 2, "offset_cm": 1.0, "height_cm": 0.0, "jaw_deg": 16.0},
                "failed": {"episodes": 1, "offset_cm": 1.6, "height_cm": 2.1, "jaw_deg": 19.0},
            }
        },
        "stack": {"grasp": {"failed": {"episodes": 1, "offset_cm": 2.0, "height_cm": 2.0}}},
        "push": {
            "push": {
                "succeeded": {"episodes": 1, "slid_cm": 10.0, "off_deg": 4.0},
                "failed": {"episodes": 2, "slid_cm": 3.0, "off_deg": 10.0},
            }
        },
    }
    assert measure_text(medians["pick"]) == (
        "grasp: succeeded 2: 1.0 cm off, jaws 16 deg; failed 1: 1.6 cm off, jaws 19 deg"
    )
    assert measure_text(medians["stack"]) == "grasp: failed 1: 2.0 cm off"
    assert measure_text(medians["push"]) == (
        "push: succeeded 1: slid 10.0 cm, 4 deg off; failed 2: slid 3.0 cm, 10 deg off"
    )
    assert measure_text({}) == ""


def test_progress_fields_keep_only_numeric_measures():
    fields = _progress_fields(
        {
            "stages": ["reached"],
            "failure": "landed on block",
            "measures": {"grasp": {"offset_cm": 1, "note": "x"}, "bad": 3},
        },
        False,
    )
    assert fields["measures"] == {"grasp": {"offset_cm": 1.0}} and fields["failure"] == "landed on block"
    assert _progress_fields({"stages": [], "failure": None, "measures": "bad"}, True)["measures"] == {}
    assert _progress_fields({"stages": []}, True)["measures"] == {}
