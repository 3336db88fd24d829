import re

import numpy as np
import pytest

from embodia.sim.tasks import COLORS, DIRECTIONS, FAMILIES, make_task, parse_instruction, sample_task


def _words(templates):
    return {w for t in templates for w in re.sub(r"\{\w+\}", "", t).split()}


def test_at_least_five_families_with_five_templates_each():
    assert len(FAMILIES) >= 5
    for fam in FAMILIES.values():
        assert len(fam.train_templates) + len(fam.heldout_templates) >= 5
        assert fam.heldout_templates and fam.train_templates


def test_heldout_templates_use_unseen_verb_and_noun():
    all_train_words = set().union(*(_words(f.train_templates) for f in FAMILIES.values()))
    for fam in FAMILIES.values():
        for tpl in fam.heldout_templates:
            verb = tpl.split()[0]
            assert verb not in all_train_words, (fam.name, tpl)
            nouns = {"cube", "dish"} & set(tpl.split())
            assert nouns and not nouns & all_train_words, (fam.name, tpl)


def test_every_template_parses_back_to_its_task():
    rng = np.random.default_rng(0)
    for fam in FAMILIES:
        for split in ("train", "heldout"):
            for _ in range(10):
                task = sample_task(rng, fam, split)
                assert parse_instruction(task.instruction) == task


def test_unknown_task_and_color_list_the_valid_ones():
    with pytest.raises(
        ValueError, match=r"unknown color 'orange'; valid colors: \['blue', 'green', 'purple', 'red'\]"
    ):
        parse_instruction("pick up the orange block")
    with pytest.raises(ValueError, match="Task families"):
        parse_instruction("make me a sandwich")
    with pytest.raises(ValueError, match="valid task families"):
        make_task("juggle", "red")
    with pytest.raises(ValueError, match="valid directions"):
        make_task("push", "red", direction="up")
    assert set(COLORS) == {"red", "green", "blue", "purple"} and set(DIRECTIONS) == {
        "front",
        "back",
        "left",
        "right",
    }


def test_docs_task_catalogue_is_current():
    from pathlib import Path

    from embodia.sim.catalogue import tasks_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "tasks.md"
    assert doc.read_text() == tasks_markdown(), "regenerate with: embodia tasks --markdown > docs/tasks.md"


def test_augment_templates_share_no_word_with_heldout_templates():
    # Words that only held-out templates use ("cube", "tap", "with", ...) must stay unseen in training.
    train_words = set().union(*(_words(f.train_templates) for f in FAMILIES.values()))
    heldout_only = set().union(*(_words(f.heldout_templates) for f in FAMILIES.values())) - train_words
    for fam in FAMILIES.values():
        assert len(fam.augment_templates) >= 6, fam.name
        assert fam.slots == tuple(dict.fromkeys(re.findall(r"\{(\w+)\}", " ".join(fam.augment_templates))))
        for tpl in fam.augment_templates:
            assert not (_words([tpl]) & heldout_only), (fam.name, tpl, _words([tpl]) & heldout_only)


def test_carrier_words_share_no_word_with_heldout_templates_and_wrap_every_phrasing():
    from embodia.sim.tasks import CARRIER_PREFIXES, CARRIER_SUFFIXES, paraphrases

    train_words = set().union(*(_words(f.train_templates) for f in FAMILIES.values()))
    heldout_only = set().union(*(_words(f.heldout_templates) for f in FAMILIES.values())) - train_words
    carrier_words = {w.strip(",") for c in CARRIER_PREFIXES + CARRIER_SUFFIXES for w in c.split()}
    assert carrier_words and not carrier_words & heldout_only
    text = "push the red block to the left"
    plain, wrapped = paraphrases(text), paraphrases(text, carriers=True)
    n = len(CARRIER_PREFIXES) * len(CARRIER_SUFFIXES)
    assert len(wrapped) == (len(plain) + 1) * n - 1  # every phrasing (the text's own too) in every carrier
    assert set(plain) < set(wrapped) and "please push the red block to the left now" in wrapped
    assert all("red" in a and "left" in a for a in wrapped)


def test_paraphrases_keep_the_task_and_never_use_heldout_phrasings():
    from embodia.sim.tasks import paraphrases

    alts = paraphrases("push the red block to the left")
    assert "slide the red block to the left" in alts and "knock the red block to the left" in alts
    assert "push the red block to the left" not in alts
    assert all("red" in a and "left" in a for a in alts)
    heldout = {t.format(color="red", direction="left") for t in FAMILIES["push"].heldout_templates}
    assert not heldout & set(alts)
    assert len(alts) == len(FAMILIES["push"].train_templates) + len(FAMILIES["push"].augment_templates) - 1
    stack = paraphrases("stack the blue block on the green block")
    assert "lay the blue block on the green block" in stack
    # Not a tabletop instruction (e.g. a Meta-World task): nothing to swap in.
    assert paraphrases("Push the puck to a goal") == []
