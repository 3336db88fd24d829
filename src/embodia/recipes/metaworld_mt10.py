"""The shipped Meta-World MT10 policy (`policy/metaworld_mt10`, "embodia-metaworld-mt10"): 84.0 % on MT10.

History (its model card): `embodia record metaworld:mt10 --episodes 500 --num-envs 1 --seed
2000` (494 successful expert episodes, 16.5 min on one core), then trained on one NVIDIA H200 with the
metaworld preset at batch 512, lr 1.5e-3, warmup 500 (what the `metaworld_gpu` preset now holds): 13,127
steps in 11.1 min. Evaluated with `python benchmarks/metaworld_suite.py` (LeRobot's protocol: 10 trials per
task on fixed seeds, 2 envs): 84.0 % executing 8 of the 16 actions of a chunk (81.0 % executing all 16).

What differs from history: the training ran under a device-session driver around
`embodia.train.loop.Trainer` (not `embodia train`), now lost, which decayed the cosine over wall-clock time
to a deadline while a second training run shared the GPU; the recipe trains the preset as `embodia train`
does, the cosine over the 13,127 steps that run reached. The architecture is the base's as it was then
(flow_steps 5, 8 actions executed per chunk), which the `metaworld_gpu` preset's model (today's base
model: 3 and 16) no longer is, so the stage sets them back.
"""

from __future__ import annotations

from dataclasses import replace

from embodia.data.record import RecordConfig
from embodia.recipes.stages import Evaluate, Recipe, Record, Train
from embodia.train.config import BASE_MODEL, preset

# The MT10 policy acts as shipped: 5 flow steps, 8 of the 16 actions of a chunk executed.
MT10_MODEL = replace(BASE_MODEL, n_action_steps=8, flow_steps=5)

RECIPE = Recipe(
    name="metaworld_mt10",
    shipped="metaworld_mt10",
    about="the shipped Meta-World MT10 policy: 494 expert episodes, 13,127 GPU steps at batch 512; 84.0 % on MT10",
    artifact="train_mt10",
    notes=__doc__.split("What differs from history: ")[1].strip(),
    stages=(
        Record("mt10", RecordConfig("metaworld:mt10", episodes=500, num_envs=1, seed=2000)),
        Train(
            "train_mt10",
            preset("metaworld_gpu", steps=13_127, model=MT10_MODEL),
            datasets=("mt10",),
            gpu=True,
            differs="a lost driver around Trainer decayed the cosine over wall-clock time to a deadline "
            "(11.1 min, a second run sharing the H200); replayed as embodia train's cosine over the "
            "13,127 steps it reached",
        ),
        # benchmarks/metaworld_suite.py: 10 trials per task on the fixed evaluation seeds, 2 envs, one video
        # per task, at the camera size the policy was trained on.
        Evaluate(
            "eval_mt10",
            policy="train_mt10",
            suite="metaworld:mt10",
            episodes=10,
            num_envs=2,
            expect=(84, 100),
        ),
    ),
)
