"""The shipped Meta-World MT50 policy (`policy/metaworld_mt50`, "embodia-metaworld-mt50"): 59.0 % on MT50.

History (its model card): the shipped MT10 policy fine-tuned on all 50 tasks in three rounds on
a 2-core CPU, each round adding a recording (`embodia record metaworld:mt50 --episodes N --seed S`) and
starting from the previous round's policy, all with the `metaworld` preset (warmup 300, aug_shift 0.08)
at batch 64:
    round 1: seed 3000 (600 attempted, 591 kept); lr 5e-4, seed 5, 6,070 steps (--minutes 45): 51.8 %
    round 2: + seed 4000 (1,000 attempted, 980 kept); lr 3e-4, seed 6, 5,643 steps (--minutes 72): 57.0 %
    round 3: + seed 5000 (1,000 attempted, 985 kept); lr 3e-4, seed 9, 9,402 steps (--minutes 80): 59.0 %
The datasets are sampled in proportion to their frames (no --weights). Evaluated with `python
benchmarks/metaworld_suite.py --suite mt50` (10 trials per task on fixed seeds): 295/500.

What differs from history: the rounds ran with `--minutes` budgets; the recipe replays the step counts they
reached (minutes=0). Round 1 starts from the shipped `metaworld_mt10` by name (the policy it started from);
to rebuild MT50 on a rebuilt MT10, point its init_from at that recipe's output.
"""

from __future__ import annotations

from embodia.data.record import RecordConfig
from embodia.recipes.stages import Evaluate, Recipe, Record, Train
from embodia.train.config import TrainConfig, preset

BUDGET = "ran with a --minutes budget; replayed as the step count it reached (minutes=0)"


def finetune(steps: int, lr: float, seed: int) -> TrainConfig:
    """`embodia train ... --preset metaworld --init-from PREVIOUS --batch-size 64 --lr LR --seed SEED`."""
    return preset("metaworld", steps=steps, batch_size=64, lr=lr, seed=seed)


RECIPE = Recipe(
    name="metaworld_mt50",
    shipped="metaworld_mt50",
    about="the shipped Meta-World MT50 policy: the MT10 policy fine-tuned in three CPU rounds; 59.0 % on MT50",
    artifact="finetune_r3",
    notes=__doc__.split("What differs from history: ")[1].strip(),
    stages=(
        Record("mt50_s3000", RecordConfig("metaworld:mt50", episodes=600, num_envs=2, seed=3000)),
        Train(
            "finetune_r1",
            finetune(6070, lr=5e-4, seed=5),
            datasets=("mt50_s3000",),
            init_from="metaworld_mt10",
            differs=BUDGET + " (45 min: 6,070 steps)",
        ),
        Record("mt50_s4000", RecordConfig("metaworld:mt50", episodes=1000, num_envs=2, seed=4000)),
        Train(
            "finetune_r2",
            finetune(5643, lr=3e-4, seed=6),
            datasets=("mt50_s3000", "mt50_s4000"),
            init_from="finetune_r1",
            differs=BUDGET + " (72 min: 5,643 steps)",
        ),
        Record("mt50_s5000", RecordConfig("metaworld:mt50", episodes=1000, num_envs=1, seed=5000)),
        Train(
            "finetune_r3",
            finetune(9402, lr=3e-4, seed=9),
            datasets=("mt50_s3000", "mt50_s4000", "mt50_s5000"),
            init_from="finetune_r2",
            differs=BUDGET + " (80 min: 9,402 steps)",
        ),
        # benchmarks/metaworld_suite.py --suite mt50: 10 trials per task, fixed seeds, 2 envs.
        Evaluate(
            "eval_mt50",
            policy="finetune_r3",
            suite="metaworld:mt50",
            episodes=10,
            num_envs=2,
            expect=(295, 500),
        ),
    ),
)
