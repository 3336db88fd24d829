"""The issue's overfit sanity check, end to end: a tiny flow-matching VLA trained through the real training
path on one recorded episode reproduces that episode's actions (every chunk of it, open loop, with a fixed
noise seed) to a normalised MAE under 0.05, where 1.0 is half the action's q01..q99 range."""

from dataclasses import replace
from pathlib import Path

from embodia.data import edit
from embodia.data.reader import LeRobotDataset
from embodia.policy.policy import Policy
from embodia.train.config import TrainConfig
from embodia.train.doctor import PROBE_MODEL, open_loop_replay
from embodia.train.loop import train

TINY_DATASET = Path(__file__).parents[1] / "fixtures" / "so101_tabletop_tiny"


def test_tiny_flow_model_reproduces_the_one_episode_it_was_trained_on(tmp_path):
    episodes = [e["episode_index"] for e in LeRobotDataset.open(TINY_DATASET).episodes]
    one = edit.delete_episodes(TINY_DATASET, episodes[1:], tmp_path / "one_episode")
    model = replace(PROBE_MODEL, head="flow", embodiments=list(PROBE_MODEL.embodiments))
    cfg = TrainConfig(datasets=[str(one)], steps=400, batch_size=32, lr=3e-3, warmup_steps=20, log_every=50,
                      save_every=400, ema_decay=0.0, augment=False, seed=0, cache_dir=str(tmp_path / "cache"),
                      model=model)  # fmt: skip
    policy = Policy.from_pretrained(train(cfg, tmp_path / "run"))
    assert policy.cfg.head == "flow"
    replay = open_loop_replay(policy, one, episodes=[0], every=1, seed=0)
    n = LeRobotDataset.open(one).episodes[0]["length"]
    assert replay["chunks"] == n - policy.chunk_size  # every chunk start of the episode
    print(f"one-episode overfit: normalised action MAE {replay['mae']:.4f} over {replay['chunks']} chunks")
    assert replay["mae"] < 0.05
