"""The shipped recipes by name: one module per shipped artifact (`base`, `metaworld_mt10`,
`metaworld_mt50`) plus the few-shot benchmark (`fewshot_place`). `recipes.runner` looks recipes up
here; the package re-exports `list_recipes` and `get_recipe`."""

from __future__ import annotations

from embodia.recipes import base, fewshot_place, metaworld_mt10, metaworld_mt50
from embodia.recipes.stages import Recipe, RecipeError

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        base.RECIPE,
        metaworld_mt10.RECIPE,
        metaworld_mt50.RECIPE,
        fewshot_place.RECIPE,
        fewshot_place.RECIPE_STACK_D,
    )
}


def list_recipes() -> list[Recipe]:
    return list(RECIPES.values())


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise RecipeError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}")
    return RECIPES[name]
