"""Reading a free-text instruction: which catalogue task it asks for, whether it asks for one at all, and
the words the policy is given.

    reading = read_instruction("shove the green block away from the robot", encoder)
    reading.task          # push(green, front): the scene to lay out and the success to judge
    reading.in_scope      # similarity >= the calibrated threshold
    reading.grounded      # "push the green block to the front": what the policy reads

1. **Directions are grounded by words, not by similarity.** A sentence encoder puts "forward" and
   "backwards", or "toward the right side" and "to the left", close together: they share every word but
   one. So the directions the text names (`directions_named`: forward/ahead/away from the robot -> front,
   towards the robot/backwards -> back, left/leftwards/left-hand -> left, ...) restrict the candidates
   to tasks with one of them, and a text that names none rules out the tasks that need one ("put the
   red block on the green one" is a stack, not "beside ... on its right"); the encoder then compares
   the text, its direction phrases put in the catalogue's words ("to the front"), with those left.
   Colours likewise: the catalogue colours the text names, in order, fix the moved block and the other
   one ("stack red on green": red onto green; an encoder hears the same sentence either way).
2. **Families by similarity**: each (family, slot values) left is judged by its mean similarity over all
   its phrasings (a single template can match on a shared noun while the verb says another family);
   its best-matching phrasing gives the score.
3. **Scope**: below `SCOPE_THRESHOLD`, calibrated on committed in-scope and out-of-scope sets
   (`benchmarks/language_scope.py`, `benchmarks/language/`), the text asks for nothing the catalogue
   (built-in and --tasks families) offers: `run`, the MCP `do` tool and the policy server refuse it and
   name the closest tasks. A text that names a colour no block has ("the yellow block") is out of scope
   whatever its similarity.
4. **Grounding**: for text in scope the policy reads the matched task's canonical phrasing, its family's
   first train template with the task's slots ("push the green block to the front"): words it was
   trained on, and the same words for every wording of one task, so that its behaviour hangs neither on
   how the encoder places an unseen synonym nor on which train phrasing the user's words resemble
   ("shove it forward" is closest to "shove the green block frontwards"). The user's own words still name the run and appear in its report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from embodia.sim.tasks import COLORS, FAMILIES, TaskInstance, make_task, parse_instruction

# Calibrated by benchmarks/language_scope.py on the calibration half of benchmarks/language/scope_in.json
# and scope_out.json (the other half measures it): see docs/results.md, "Language scope".
SCOPE_THRESHOLD = 0.745

_ROBOT = (
    r"(?:where (?:the |its |your )?(?:robot arm|robot|arm)(?: is| sits| stands)?(?: mounted| based| attached| "
    r"located| standing| sitting)?|"
    r"(?:the |its |your |this )?(?:robot arm|robot's base|arm's base|robot|arm|base|manipulator|mount|"
    r"yourself|you|itself)(?!['’]s))\b"
)
_TOWARD = r"(?:towards?|to|in to|in towards?|back to|back towards?|up to|over to)"
DIRECTION_PATTERNS: dict[str, tuple[str, ...]] = {
    "front": (r"\bfront\b", r"\bfrontwards?\b", r"\bforwards?\b", r"(?<!go )\bahead\b", r"\bonwards?\b",
              r"\boutwards?\b", r"\bdeeper\b", r"\bbeyond\b",
              r"\b(?:far|farther|further|farthest|furthest)(?: out| away| off| side| end| edge)\b",
              rf"\b(?:farther|further|far|farthest|furthest|more distant|distant|out|off) (?:away |out )?from {_ROBOT}",
              r"\bopposite(?: to| from)? (?:the |its |your )?(?:robot|arm|you|base)\b(?!['’]s| is facing| faces)",
              rf"\bacross from {_ROBOT}", rf"\bin front of {_ROBOT}",
              rf"\baway from {_ROBOT}", r"\b(?:far|distant|opposite) (?:side|end|edge)\b",
              r"\b(?:direction|way) (?:that |in which )?(?:the |its |your )?(?:robot|arm|gripper)(?: arm)? "
              r"(?:is )?(?:facing|faces|points|is pointing|reaches)\b"),
    "back": (r"\bback\b", r"\bbackwards?\b", r"\brear(?:wards?)?\b", r"\binwards?\b", r"\bhomewards?\b",
             rf"\b{_TOWARD} {_ROBOT}", rf"\b(?:closer|nearer|nearest|closest|close|near|next) (?:to |in to |in towards? )?{_ROBOT}",
             r"\b(?:closer|nearer) in\b", r"\bnear(?:er)? (?:side|end|edge)\b",
             r"\bin (?:your|its|the robot's|the arm's|my) direction\b",
             rf"\b(?:side|end|edge)(?: of the table)? (?:(?:where|that) )?{_ROBOT} (?:sits|is|stands)(?: on| at)?",
             r"\baway from the (?:far|distant|opposite) (?:side|end|edge)\b"),
    "left": (r"\bleft\b", r"\bleftwards?\b", r"\bleft[- ]hand\b", r"\bleftmost\b", r"\bport\b"),
    # ("right" as in "right next to", "right away" is no direction)
    "right": (r"\bright\b(?! (?:next|beside|there|here|away|now|above|below|under|on|at|in|behind|where)\b)",
              r"\brightwards?\b", r"\bright[- ]hand\b", r"\brightmost\b", r"\bstarboard\b"),
}  # fmt: skip
_DIRECTION_RE = {d: [re.compile(p) for p in ps] for d, ps in DIRECTION_PATTERNS.items()}
# Colour words a user may write for a block that does not exist in this scene's palette.
OTHER_COLORS = ("yellow", "orange", "black", "white", "pink", "brown", "grey", "gray", "cyan", "magenta",
                "gold", "silver", "beige", "turquoise")  # fmt: skip


def normalize(text: str) -> str:
    return " ".join(str(text).lower().replace("’", "'").strip().rstrip(".!?").split())


def _direction_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, direction) of each direction phrase in the normalized text; a phrase inside a
    longer one counts once ("the robot's left": left, not back)."""
    norm = normalize(text)
    spans: list[tuple[int, int, str]] = []
    for direction, patterns in _DIRECTION_RE.items():
        for pattern in patterns:
            spans += [(m.start(), m.end(), direction) for m in pattern.finditer(norm)]
    kept = [s for s in spans if not any(o[0] <= s[0] and s[1] <= o[1] and o != s for o in spans)]
    return sorted(set(kept))


def directions_named(text: str) -> set[str]:
    """The directions (front, back, left, right: the robot's) the text names."""
    return {d for _, _, d in _direction_spans(text)}


# Around a direction phrase, the words that only say "in that direction" ("over toward the ... edge of
# the table"): replaced with it by the catalogue's "to the <direction>".
_LEAD_IN = re.compile(
    r"(?:\b(?:over|out|back|up|down|across|off|in|further|farther|a bit|a little) )?"
    r"\b(?:towards?|to|into|in|at|on|over to|onto) (?:the |its |your |his |her )?"
    r"(?:(?:table |tabletop )?(?:edge|side|end|half|part)(?: of the (?:table|tabletop))?,? (?:that is |which is |the one )?)?"
    r"(?:robot's |arm's )?$"
)
_TRAIL = re.compile(
    r"^(?:[- ]hand)?(?: (?:side|edge|end|part|half))?"
    r"(?: of (?:the )?(?:table|tabletop|workspace|work area|surface|desk|board|scene)"
    r"| of where (?:it|the block) (?:is|sits|stands|lies)(?: now)?)?\b"
    # an edge told by what stands there: "..., the one the robot is mounted on"
    r"(?:,? (?:the one |which is |that is )?(?:where |that )?(?:the |its )?(?:robot|arm)(?: arm)?(?: is)? "
    r"(?:mounted|sits|stands|attached|based|fixed)(?: on| at| to)?\b)?"
)
# Politeness and hedges that carry no task: dropped before the encoder compares the text with the
# catalogue (they lower the similarity of a request the catalogue offers). Never a verb, object,
# colour or direction.
_FILLER = re.compile(
    r"^(?:(?:hey|ok|okay|robot|now|so),? )*(?:please |kindly )?"
    r"(?:(?:can|could|would|will) you (?:please )?|i(?:'d| would) like (?:you )?to |i want (?:you )?to |"
    r"go ahead and |try to |(?:have|let|make|get) (?:the |your )?(?:robot arm|robot|arm) |"
    r"i(?:'d| would) like |i want |let's |let us )?"
    r"|,? (?:please|pls|plz|thanks|thank you|thx|ty|first|now|right now|then)$"
    r"|\b(?:please|pls|plz|slowly|quickly)\b"
    r"|^(?:when you get a chance|if you can(?: reach it)?|when you can),? "
    r"|, robot$|,? for me$"
    r"|,? ?\b(?:by )?(?:about |around |roughly |approximately |some |maybe )?"
    r"(?:a couple of|a few|an?|one|two|three|four|five|six|ten|\d+(?:\.\d+)?) ?"
    r"(?:inch(?:es)?|centimet(?:er|re)s?|cm|millimet(?:er|re)s?|mm)\b"
    r"|,? relative to (?:the robot|the arm|you|its base|the robot's base)\b"
    # an alternative the user rules out, said of the block already named ("..., don't pick it up")
    r"|,? (?:but |and )?(?:don't|do not|without|not|instead of|rather than) "
    r"(?:pick(?:ing)?|lift(?:ing)?|stack(?:ing)?|grab(?:bing)?|rais(?:e|ing)|carry(?:ing)?) (?:it|them)"
    r"(?: up)?(?: on(?:to)? anything| on(?:to)? (?:another|any other) block)?\b"
    r"|\b(?:a (?:little|bit|touch|tad)(?: bit)?|slightly|gently|carefully|"
    r"a short (?:way|distance)|some|just)\b"
    r"|,? (?:with|using) (?:the |your |its )?(?:gripper|arm|claw|hand|fingers)\b"
    r"|,? as (?:the robot|you|it) sees? it\b"
    r"|,? \(?(?:(?:from|in) )?(?:the robot's|robot's|your|its|the arm's|arm's) (?:point of view|perspective|view|frame)\b\)?"
    r"|\bsideways\b"
    r"|,? (?:across|along|over) the (?:table|tabletop|surface)\b|\balong\b"
)


# What a user may call a block, said after its colour ("the red brick"): the catalogue's "block".
_BLOCK_WORDS = r"(?:one|brick|box|piece|square|thing|object|item|blok)"


def _without_filler(norm: str) -> str:
    # "the green one", "the green brick": the green block
    norm = re.sub(rf"\b({'|'.join(COLORS)}) {_BLOCK_WORDS}\b", r"\1 block", norm)
    previous = None
    while previous != norm:
        previous, norm = norm, " ".join(_FILLER.sub(" ", norm).split()).strip(" ,")
    return norm


def with_plain_directions(text: str) -> str:
    """The text in the catalogue's words: politeness and hedges dropped, each direction phrase with the
    words around it that only say "that way" put as "to the <direction>" ("toward the far edge of the
    table" -> "to the front"), so that the encoder compares like with like."""
    norm = _without_filler(normalize(text))
    out, at = [], 0
    for start, end, direction in _direction_spans(norm):
        if start < at:  # overlapping phrases of two directions: leave the text as it is
            return norm
        lead = _LEAD_IN.search(norm[at:start])
        trail = _TRAIL.match(norm[end:])
        out += [norm[at : at + lead.start()] if lead else norm[at:start], f"to the {direction}"]
        at = end + (trail.end() if trail else 0)
    plain = " ".join("".join(out + [norm[at:]]).split()).replace(" ,", ",")
    # The same direction said twice, the second to say whose it is ("left (the robot's left)"): once.
    return _REPEATED.sub(r"\1", plain)


_REPEATED = re.compile(
    r"(to the (front|back|left|right))[ ,;:()-]*(?:i mean |that is |i\.e\.,? )?"
    r"(?:the |its )?(?:robot's |arm's )?(?:to the )?\2\b\)?"
)


_NEGATED = re.compile(r"^(?:don't|do not|dont|never|no need to|you don't need to|avoid|refrain from)\b")


def negated(text: str) -> bool:
    """Whether the request itself is negated ("don't touch the red block"), not an alternative it rules
    out after asking for something ("push it left, don't pick it up")."""
    return bool(_NEGATED.match(_without_filler(normalize(text))))


def direction_of(text: str) -> str | None:
    """The one direction the text names, or None when it names none or several."""
    found = directions_named(text)
    return found.pop() if len(found) == 1 else None


def colors_of(text: str) -> list[str]:
    """The catalogue colours the text names, in the order it first names them."""
    found: list[str] = []
    for word in re.findall(r"[a-z]+", normalize(text)):
        if word in COLORS and word not in found:
            found.append(word)
    return found


def _consistent(values: dict[str, str], directions: set[str], colors: list[str]) -> bool:
    """Whether a task's slot values agree with the directions and colours the text names: a task with a
    direction needs the text to name that one (none named: not that task; several: any of them)."""
    if "direction" in values and values["direction"] not in directions:
        return False
    named = [values[k] for k in ("color", "other") if k in values]
    if len(colors) == 1 and len(named) == 2:  # a task of two blocks needs the text to name both
        return False
    if not colors or not named:
        return True
    return named[: len(colors)] == colors[: len(named)]


def foreign_colors(text: str) -> list[str]:
    """Colour words of the text that no block of the catalogue has."""
    words = set(re.findall(r"[a-z]+", normalize(text)))
    return [c for c in OTHER_COLORS if c in words and c not in COLORS]


@dataclass(frozen=True)
class Reading:
    """What a free-text instruction asks for (see the module docstring)."""

    text: str
    task: TaskInstance  # the closest catalogue task
    score: float  # cosine similarity of its best phrasing (1.0: a catalogue template, word for word)
    grounded: str  # the instruction the policy reads
    closest: tuple[tuple[str, float], ...]  # the closest tasks (phrasing, similarity), best first
    threshold: float = SCOPE_THRESHOLD
    reason: str = ""  # why it is out of scope, beyond a low similarity

    @property
    def exact(self) -> bool:
        return self.score >= 1.0

    @property
    def in_scope(self) -> bool:
        return self.exact or (not self.reason and self.score >= self.threshold)

    def refusal(self) -> str:
        """Why the text is not acted on, with the closest tasks, for the user."""
        why = self.reason or f"similarity {self.score:.2f} < {self.threshold:.2f}"
        options = "; ".join(f"{t!r} ({s:.2f})" for t, s in self.closest)
        return (
            f"{self.text!r} is outside what this robot's task catalogue offers ({why}). Closest tasks: "
            f"{options}. Families: {', '.join(sorted(FAMILIES))} (`embodia tasks` lists their phrasings)."
        )


_CATALOGUE: tuple[tuple[str, ...], list[TaskInstance], np.ndarray] | None = None  # (families, tasks, vectors)


def all_tasks() -> list[TaskInstance]:
    """Every instruction the catalogue can express (both template splits), user families included."""
    out = []
    for fam in FAMILIES.values():
        combos = _slot_values(fam)
        for split in ("train", "heldout"):
            for tpl in range(len(fam.templates(split))):
                out.extend(make_task(fam.name, template=tpl, split=split, **values) for values in combos)
    return out


def _slot_values(fam) -> list[dict[str, str]]:
    """Every combination of the family's slot values that respects each slot's `distinct_from`."""
    combos: list[dict[str, str]] = [{}]
    for name in fam.slots:
        slot = fam.slot(name)
        combos = [
            c | {name: v}
            for c in combos
            for v in slot.values
            if all(c.get(d) != v for d in slot.distinct_from)
        ]
    return combos


def _catalogue(encoder) -> tuple[list[TaskInstance], np.ndarray]:
    global _CATALOGUE
    if _CATALOGUE is None or _CATALOGUE[0] != tuple(FAMILIES):  # a task file may have added families
        tasks = all_tasks()
        _, _, pooled = encoder.encode([t.instruction for t in tasks])
        _CATALOGUE = (tuple(FAMILIES), tasks, pooled.numpy())
    return _CATALOGUE[1], _CATALOGUE[2]


# Where a request's clauses part: "if the red block is near you, push it forward", "it is in my way;
# move the blue block left", "blue box -> forward".
_CLAUSE = re.compile(r"\s*(?:[,;:.!?()]|->|→|—|–|\bso\b|\bthen\b)\s*")
_PRONOUN = re.compile(r"(?<=\w )(?:it|that one|this one)\b")  # an object, not a clause's subject


def candidates(text: str) -> list[str]:
    """The texts compared with the catalogue: the whole request in the catalogue's words, and each of
    its clauses of two words or more that asks for something (not "don't pick it up"), where a text
    naming one colour has "it" read as that block ("the red block is in my way, so move it left": "move
    the red block to the left")."""
    whole = with_plain_directions(text)
    colors = colors_of(text)
    out = [whole]
    for clause in _CLAUSE.split(normalize(text)):
        if negated(clause):
            continue
        plain = with_plain_directions(clause)
        if len(colors) == 1 and colors[0] not in plain:
            plain = _PRONOUN.sub(f"the {colors[0]} block", plain)
        if len(plain.split()) >= 2 and plain not in out:
            out.append(plain)
    return out


def read_instruction(text: str, encoder, threshold: float = SCOPE_THRESHOLD, top: int = 3) -> Reading:
    """Read `text` against the active catalogue with `encoder` (the policy's frozen sentence encoder)."""
    try:
        task = parse_instruction(text)
        return Reading(text, task, 1.0, task.instruction, ((task.instruction, 1.0),), threshold)
    except ValueError:
        pass
    tasks, pooled = _catalogue(encoder)
    _, _, q = encoder.encode(candidates(text))
    # The best of the whole text and its clauses, per catalogue phrasing (unit vectors: float error can
    # pass 1).
    scores = np.clip((pooled @ q.numpy().T).max(axis=1), -1.0, 1.0)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tasks):
        groups.setdefault((t.family, *sorted(t.values.items())), []).append(i)
    directions, colors = directions_named(text), colors_of(text)
    # The directions and colours the text names rule out tasks that contradict them (those without such
    # slots stay); if none is left, the similarity alone decides.
    agree = {k: v for k, v in groups.items() if _consistent(tasks[v[0]].values, directions, colors)}
    groups = agree or groups
    ranked = sorted(groups, key=lambda g: -float(np.mean(scores[groups[g]])))
    best_of = {g: max(groups[g], key=lambda i: scores[i]) for g in ranked[:top]}
    best = best_of[ranked[0]]
    top = tasks[best]
    grounded = make_task(top.family, **top.values).instruction  # template 0 of the train split
    closest = tuple((tasks[best_of[g]].instruction, round(float(scores[best_of[g]]), 3)) for g in best_of)
    foreign = foreign_colors(text)
    reason = f"no block is {' or '.join(foreign)} (colours: {', '.join(COLORS)})" if foreign else ""
    if not reason and negated(text):
        reason = "it asks the robot not to do something; the catalogue's tasks are things to do"
    return Reading(text, tasks[best], float(scores[best]), grounded, closest, threshold, reason)


def interpret(text: str, encoder) -> tuple[TaskInstance, float]:
    """The catalogue task closest to `text` and the cosine similarity (1.0 for an exact template)."""
    reading = read_instruction(text, encoder)
    return reading.task, reading.score
