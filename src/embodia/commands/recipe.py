"""`embodia recipe list` / `embodia recipe run NAME`: rebuild a shipped policy from its recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.table import Table

from embodia.commands.common import console
from embodia.configs import opt, ray_option


@dataclass(frozen=True)
class RecipeListOptions:
    json: bool = opt(False, "print the recipes and their stages as JSON")


def cmd_recipe_list(o: RecipeListOptions) -> int:
    """List the recipes, their stages and the artifact each one rebuilds."""
    from embodia.recipes import list_recipes

    recipes = list_recipes()
    if o.json:
        import json

        print(json.dumps([{"name": r.name, "about": r.about, "artifact": r.artifact,
                           "stages": [s.name for s in r.stages]} for r in recipes], indent=2))  # fmt: skip
        return 0
    table = Table(title="recipes (embodia recipe run NAME)")
    for col in ("recipe", "what it rebuilds", "stages"):
        table.add_column(col, overflow="fold")
    for r in recipes:
        table.add_row(r.name, r.about, " -> ".join(s.name for s in r.stages))
    console.print(table)
    return 0


@dataclass(frozen=True)
class RecipeRunOptions:
    name: str = opt(help="the recipe (embodia recipe list)", positional=True)
    scale: Literal["full", "tiny"] = opt(
        "full", "full: the recorded settings; tiny: every stage shrunk to seconds on the CPU (a smoke test)"
    )
    device: Literal["cpu", "cuda"] | None = opt(
        None, "where the GPU stages train (default: a CUDA GPU when torch sees one); tiny runs on the CPU"
    )
    ray: str | None = ray_option(
        "Record and Evaluate stages' episodes", "Ray actors (each stage's num_envs; same outputs)"
    )
    from_stage: str | None = opt(None, "start at this stage (the earlier ones must be complete)", flag="from")
    until_stage: str | None = opt(None, "stop after this stage", flag="until")
    out: str | None = opt(None, "folder of the stages (default ./embodia_runs/recipe/<name>-<scale>)")


def cmd_recipe_run(o: RecipeRunOptions) -> int:
    """Run a recipe's stages in order; a stage whose output matches its config and inputs is skipped."""
    from embodia.recipes import run_recipe

    if o.ray is not None:
        from embodia.cluster import import_ray

        import_ray()  # without the extra: a clear error before any stage runs
    result = run_recipe(o.name, scale=o.scale, device=o.device, ray=o.ray, from_stage=o.from_stage,
                        until_stage=o.until_stage, out=o.out, console=console)  # fmt: skip
    console.print(result.summary_table() if hasattr(result, "summary_table") else result)
    return 0
