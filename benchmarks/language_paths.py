"""Which language path does a phrasing break? The policy reads an instruction twice: MiniLM's per-token
states enter the prefix transformer as tokens, and the pooled sentence vector drives FiLM in the vision
encoder. When a phrasing fails, swap one path at a time for a phrasing that works (the donor) and see
which swap brings success back.

    python benchmarks/language_paths.py [--checkpoint CKPT] --family pick \\
        --phrasing "hoist the {color} cube into the air" --donor "raise the {color} cube" [--episodes 50]

The phrasing must be one of the family's templates (`embodia tasks`). Runs the same seeded episodes of
its split (train or held-out templates) three times and reports the phrasing's own episodes: as is; with
the donor's pooled vector (the phrasing's tokens kept); with the donor's tokens (the phrasing's pooled
vector kept). The other templates' episodes are untouched. If the donor's pooled vector fixes it, the
FiLM path is the one that is thrown (the cue for `embodia train --sentence-mix / --sentence-noise`); if
its tokens do, the prefix transformer is.
"""

from __future__ import annotations

import argparse
import re

from rich.console import Console
from rich.table import Table

from embodia.eval.run import evaluate
from embodia.policy.language import InstructionEncoder
from embodia.policy.policy import Policy
from embodia.sim.tasks import FAMILIES


class SwappedEncoder:
    """The real encoder, except that for instructions of `phrasing` one output (tokens or pooled vector)
    comes from the same instruction written as `donor`."""

    def __init__(self, encoder: InstructionEncoder, phrasing: str, donor: str, swap: str | None):
        self.encoder, self.swap = encoder, swap
        # "hoist the {color} cube" -> a regex whose groups are the slot values, to rewrite to the donor
        self.slots = re.findall(r"\{(\w+)\}", phrasing)
        self.pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "(\\\\w+)", re.escape(phrasing)) + "$")
        self.donor = donor

    def _donor_of(self, text: str) -> str:
        m = self.pattern.match(text)
        return self.donor.format(**dict(zip(self.slots, m.groups(), strict=True))) if m else text

    def encode(self, texts: list[str]):
        tokens, mask, pooled = self.encoder.encode(texts)
        if self.swap is None:
            return tokens, mask, pooled
        d_tokens, d_mask, d_pooled = self.encoder.encode([self._donor_of(t) for t in texts])
        return (tokens, mask, d_pooled) if self.swap == "pooled" else (d_tokens, d_mask, pooled)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default=None, help="policy folder (default: the shipped base)")
    parser.add_argument("--family", default="pick", choices=sorted(FAMILIES))
    parser.add_argument("--phrasing", default="hoist the {color} cube into the air")
    parser.add_argument("--donor", default="raise the {color} cube")
    parser.add_argument("--episodes", type=int, default=50, help="episodes of the split (all its templates)")
    parser.add_argument("--seed", type=int, default=0, help="offset of the evaluation seeds")
    args = parser.parse_args()
    family = FAMILIES[args.family]
    if args.phrasing not in family.templates("all"):
        parser.error(f"--phrasing must be one of {family.name}'s templates: {family.templates('all')}")
    split = "train" if args.phrasing in family.train_templates else "heldout"
    if set(re.findall(r"\{(\w+)\}", args.donor)) != set(family.slots):
        parser.error(f"--donor {args.donor!r} must use exactly the slots of {family.name}: {family.slots}")

    base = InstructionEncoder()
    table = Table(title=f"{family.name}: {args.phrasing!r} (donor {args.donor!r}), its {split} episodes")
    for col in ("condition", "success", "Wilson 95 %"):
        table.add_column(col)
    conditions = [("as is", None), ("donor's pooled vector (FiLM)", "pooled"), ("donor's tokens", "tokens")]
    for label, swap in conditions:
        encoder = SwappedEncoder(base, args.phrasing, args.donor, swap)
        policy = Policy.from_pretrained(args.checkpoint, encoder=encoder)
        result = evaluate(
            policy,
            suite=family.name,
            episodes=args.episodes,
            num_envs=1,
            split=split,
            videos_per_task=0,
            seed=args.seed,
            in_process=True,
            show_progress=False,
        )
        rate = result.templates[f"{family.name} ({split}): {args.phrasing}"]
        k, n = rate.successes, rate.n
        table.add_row(
            label, f"{k}/{n} ({100 * k / n:.0f} %)", f"{100 * rate.ci_low:.0f}-{100 * rate.ci_high:.0f} %"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
