"""The rule file on disk: edits noticed, refused edits keep the old set, secrets masked."""

import os
from pathlib import Path

import pytest

from service.errors import RuleFileError
from service.logs import SecretMask
from service.notify import CHANNEL_CONFIGS
from service.rulefile import RuleFile

GOOD = "channels:\n  s: {type: slack, url: 'https://hooks.slack.com/services/T0/B0/sekr1t'}\nrules:\n  - name: r\n    symbols: [LUMN]\n    when: price > 1\n"


def rule_file(tmp_path: Path, mask: SecretMask | None = None) -> tuple[RuleFile, Path]:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    return RuleFile(path, env_file=None, channel_configs=CHANNEL_CONFIGS, mask=mask), path


def test_an_edit_is_noticed_and_a_touch_without_change_is_not(tmp_path: Path) -> None:
    rules, path = rule_file(tmp_path)
    rules.load()
    assert rules.inspect().kind == "unchanged"
    os.utime(path, ns=(1, 1))  # new mtime, same content
    assert rules.inspect().kind == "unchanged"
    path.write_text(GOOD.replace("> 1", "> 2"))
    assert rules.inspect().kind == "loaded"


def test_a_refused_edit_keeps_the_last_valid_rule_set(tmp_path: Path) -> None:
    rules, path = rule_file(tmp_path)
    first = rules.load()
    path.write_text(GOOD.replace("price > 1", "prise > 1"))
    with pytest.raises(RuleFileError):
        rules.load()
    assert rules.ruleset is first


def test_channel_secrets_are_registered_with_the_log_mask(tmp_path: Path) -> None:
    mask = SecretMask()
    rules, _ = rule_file(tmp_path, mask)
    rules.load()
    assert "sekr1t" not in mask.mask("posting to https://hooks.slack.com/services/T0/B0/sekr1t")


def test_webhook_header_values_are_registered_too(tmp_path: Path) -> None:
    mask = SecretMask()
    path = tmp_path / "rules.yaml"
    path.write_text(
        "channels:\n  h:\n    type: webhook\n    url: https://hooks.example.com/x\n"
        "    headers: {Authorization: Bearer tok-9f8e7d}\nrules: []\n"
    )
    RuleFile(path, env_file=None, channel_configs=CHANNEL_CONFIGS, mask=mask).load()
    assert "tok-9f8e7d" not in mask.mask("Authorization: Bearer tok-9f8e7d")


def test_a_reload_frees_the_old_rule_set_though_each_load_freezes_the_heap(
    tmp_path: Path,
) -> None:
    """`collections_paused` ends each load with gc.freeze(): frozen objects are never
    collected, so a rule set must hold no reference cycle (issue #16: its conditions are
    generated functions now, their `make` shared by shape). The old one is freed by
    reference counting alone as soon as the new one replaces it."""
    import gc
    import weakref

    text = (
        GOOD.replace("when: price > 1", 'when: price > 1 and session == "pre"')
        + "    message: '{{ symbol }} at {{ price }}'\n"
        + "  - name: listed\n    symbols: [LUMN]\n    when: earnings_time in ['bmo']\n"
        + "  - name: shaped\n    symbols: [LUMN]\n    when: price < 5 and change_pct < -2\n"
    )
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    rules = RuleFile(path, env_file=None, channel_configs=CHANNEL_CONFIGS)
    try:
        old = rules.load()
        assert gc.get_freeze_count() > 0
        refs = [weakref.ref(r.when.fn) for r in old.rules]  # generated, closures, generated
        refs.append(weakref.ref(old.rules[0].template))
        del old
        path.write_text(text.replace("> 1", "> 2"))
        assert rules.inspect().kind == "loaded"
        rules.load()
        assert [ref() for ref in refs] == [None] * len(refs)  # with no collection at all
    finally:
        gc.unfreeze()
