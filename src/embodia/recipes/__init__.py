"""Recipes as code: every shipped policy rebuilt from a checked-in chain of stages.

    from embodia.recipes import list_recipes, run_recipe
    result = run_recipe("fewshot_place", scale="tiny", out="runs/fewshot")   # seconds, on the CPU
    result.artifact                                                          # .../finetune_place/final

One module per shipped artifact (base, metaworld_mt10, metaworld_mt50) plus the few-shot benchmark
(fewshot_place); each holds a `Recipe` of typed stages (`recipes.stages`) built from the library's own
configs (RecordConfig, TrainConfig presets), with every setting and a note wherever the rebuild cannot
replay history exactly. `run_recipe` (`recipes.runner`) runs them with per-stage manifests and skipping;
`embodia recipe list` / `embodia recipe run NAME` are its command line.
"""

from __future__ import annotations

from embodia.recipes.catalog import RECIPES, get_recipe, list_recipes
from embodia.recipes.runner import RecipeResult, StageResult, read_manifest, run_recipe, stage_config
from embodia.recipes.scale import SCALES, at_scale
from embodia.recipes.stages import Average, Evaluate, Recipe, RecipeError, Record, Stage, Train

__all__ = [
    "RECIPES",
    "SCALES",
    "Average",
    "Evaluate",
    "Recipe",
    "RecipeError",
    "RecipeResult",
    "Record",
    "Stage",
    "StageResult",
    "Train",
    "at_scale",
    "get_recipe",
    "list_recipes",
    "read_manifest",
    "run_recipe",
    "stage_config",
]
