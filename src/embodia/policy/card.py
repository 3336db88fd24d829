"""The model card pushed with an embodia checkpoint (`embodia policy push`), in the conventions LeRobot's
cards follow: the Hub's metadata (license, library, `robotics`, tags, the training datasets), then how
to run it, what it reads and writes, how it was made (the recipe in its config's metadata) and what it
scored (the evaluations recorded there, each with its command). A checkpoint that has its own card
(README.md, as the shipped ones do) keeps that text under the generated summary."""

from __future__ import annotations

import json
from pathlib import Path

from embodia.hub import card_text, looks_like_hub_id
from embodia.policy.checkpoint import check_policy_folder, read_json


def model_card(root: str | Path, repo_id: str, license: str = "apache-2.0") -> str:
    root = check_policy_folder(root)
    config = read_json(root / "config.json")
    meta = config.get("metadata", {})
    embodiments = config.get("embodiments", {})
    datasets = [d for d in _datasets(meta) if looks_like_hub_id(d)]
    card_data = {
        "license": license,
        "library_name": "embodia",
        "pipeline_tag": "robotics",
        "tags": ["robotics", "embodia", "vision-language-action", "flow-matching", *embodiments],
        **({"datasets": datasets} if datasets else {}),
    }
    name = meta.get("name") or repo_id.split("/")[-1]
    body = f"""
# {name}

An embodia vision-language-action policy (flow matching over action chunks). Run it with embodia:
`embodia eval {repo_id}`, `embodia run "pick up the red block" --checkpoint {repo_id}`,
`embodia serve {repo_id}` (openpi's websocket protocol); or in Python,
`from embodia.policy.policy import Policy; Policy.from_pretrained("{repo_id}")`.

{_embodiments(config)}

## How it was made

{_recipe(meta)}

## Evaluation

{_evaluations(meta)}
"""
    own = root / "README.md"
    if own.exists():
        body += "\n## The checkpoint's own card\n\n" + own.read_text().strip() + "\n"
    return card_text(card_data, body)


def _datasets(meta: dict) -> list[str]:
    found = meta.get("datasets") or (meta.get("train") or {}).get("datasets") or []
    return [str(d) for d in found] if isinstance(found, list) else []


def _embodiments(config: dict) -> str:
    rows = ["| embodiment | rate | state | cameras | action |", "|---|---|---|---|---|"]
    for name, e in config.get("embodiments", {}).items():
        shapes = e.get("image_shapes") or {}
        cams = (
            ", ".join(f"{k} {'x'.join(map(str, shapes.get(k, [])))}" for k in e.get("cameras") or []) or "-"
        )
        rows.append(
            f"| {name} | {e.get('fps', '-')} Hz | {e.get('state_dim', '-')} | {cams} | "
            f"chunks of {config.get('model', {}).get('chunk_size', '-')} x {e.get('action_dim', '-')} |"
        )
    return "\n".join(rows)


def _recipe(meta: dict) -> str:
    recipe = meta.get("recipe")
    if not isinstance(recipe, dict):
        # Hub ids as they are; a local folder by its name only (no path of the machine that trained it)
        data = (
            ", ".join(
                f"`{d}`" if looks_like_hub_id(d) else f"a local dataset `{Path(d).name}`"
                for d in _datasets(meta)
            )
            or "datasets not recorded"
        )
        return (
            f"Trained by `embodia train` (preset `{meta.get('preset', '?')}`, {meta.get('train_step', '?')} "
            f"steps) at commit `{meta.get('commit', '?')}` on {data}; no recipe is recorded in its "
            "config.json, so the command that made it is the record."
        )
    steps = f" after {meta['train_step']} training steps" if "train_step" in meta else ""
    return (
        f"Stage `{recipe.get('stage')}` of the embodia recipe `{recipe.get('name')}` "
        f"(`{recipe.get('file')}`) at commit `{recipe.get('commit')}`{steps}; "
        f"`embodia recipe run {recipe.get('name')}` rebuilds it."
    )


def _evaluations(meta: dict) -> str:
    evaluations = meta.get("evaluation")
    if not isinstance(evaluations, dict) or not evaluations:
        return "No evaluation is recorded in this checkpoint's config.json."
    rows = ["| split | success | 95 % interval | episodes | command |", "|---|---|---|---|---|"]
    for split, e in evaluations.items():
        lo, hi = (e.get("ci95") or [None, None])[:2]
        ci = f"{lo:.1%} to {hi:.1%}" if lo is not None else "-"
        rows.append(
            f"| {split} | {e.get('success_rate', 0):.1%} | {ci} | {e.get('episodes')} | `{e.get('command')}` |"
        )
    return (
        "\n".join(rows)
        + "\n\n"
        + json.dumps({"evaluation": evaluations}, indent=2).join(["```json\n", "\n```"])
    )
