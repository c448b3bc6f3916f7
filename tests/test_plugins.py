"""The lazy registries (`service/plugins.py`): names from the table alone, a declaration
imported and checked at its first lookup, and an unsound one refused there, as the eager
registries refused it at import. Each test imports modules written to its own folder."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from service.notify import CHANNEL_MODULES, CHANNEL_TYPES
from service.notify import _checked as channel_checked
from service.plugins import Plugins
from service.providers import PROVIDER_MODULES, PROVIDERS
from service.providers import _checked as provider_checked
from service.providers.plugin import ProviderType


@dataclass(frozen=True)
class Declared:
    name: str


def _refuse_blank(name: str, declared: Declared) -> None:
    if declared.name != name:
        raise TypeError(f"{name!r} declares {declared.name!r}")


@pytest.fixture
def plugin_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _module(folder: Path, name: str, body: str) -> str:
    (folder / f"{name}.py").write_text(
        "from tests.test_plugins import Declared\nimport sys\nsys.modules[__name__].imported = True\n"
        + body
    )
    return name


def test_names_and_membership_import_nothing_a_lookup_imports_its_module_once(
    plugin_folder: Path,
) -> None:
    one = _module(plugin_folder, "plug_one", "DECL = Declared('one')\n")
    two = _module(plugin_folder, "plug_two", "DECL = Declared('two')\n")
    plugins = Plugins({"one": f"{one}:DECL", "two": f"{two}:DECL"}, Declared, _refuse_blank)
    assert list(plugins) == ["one", "two"] and len(plugins) == 2
    assert "one" in plugins and "three" not in plugins and plugins.get("three") is None
    assert plugins.where("two") == "plug_two:DECL"
    assert one not in sys.modules and two not in sys.modules
    first = plugins["one"]
    assert first == Declared("one") and plugins["one"] is first
    assert one in sys.modules and two not in sys.modules
    names = plugins.view(lambda d: d.name.upper())
    assert list(names) == ["one", "two"] and two not in sys.modules
    assert dict(names) == {"one": "ONE", "two": "TWO"}  # reading every value imports all
    assert two in sys.modules


def test_an_unsound_declaration_is_refused_at_each_lookup(plugin_folder: Path) -> None:
    bad = _module(plugin_folder, "plug_bad", "DECL = Declared('other')\nNOT = 3\n")
    plugins = Plugins(
        {"bad": f"{bad}:DECL", "odd": f"{bad}:NOT", "gone": f"{bad}:MISSING"},
        Declared,
        _refuse_blank,
    )
    for _ in range(2):  # never kept: the second lookup fails the same way
        with pytest.raises(TypeError, match="'bad' declares 'other'"):
            plugins["bad"]
    with pytest.raises(TypeError, match="plug_bad:NOT is not a Declared"):
        plugins["odd"]
    with pytest.raises(TypeError, match="plug_bad:MISSING is not a Declared"):
        plugins.get("gone")
    broken = _module(plugin_folder, "plug_broken", "{}['missing']\n")
    with pytest.raises(ImportError, match="importing plug_broken:DECL raised KeyError"):
        Plugins({"x": f"{broken}:DECL"}, Declared, _refuse_blank).get("x")  # not None
    with pytest.raises(ModuleNotFoundError):
        Plugins({"x": "no_such_plugin_module:X"}, Declared, _refuse_blank)["x"]
    with pytest.raises(ValueError, match="not module:ATTRIBUTE"):
        Plugins({"x": "no_attribute"}, Declared, _refuse_blank)


def test_the_registries_refuse_an_unsound_channel_or_provider_where_it_is_looked_up() -> None:
    webhook = CHANNEL_TYPES["webhook"]
    channel_checked("webhook", webhook)
    with pytest.raises(TypeError, match="its module declares 'webhook'"):
        channel_checked("slack", webhook)
    with pytest.raises(TypeError, match="looks like a URL"):
        channel_checked("webhook", replace(webhook, url_fields=frozenset()))
    finnhub: ProviderType = PROVIDERS["finnhub"]
    provider_checked("finnhub", finnhub)
    with pytest.raises(TypeError, match="its module declares 'finnhub'"):
        provider_checked("fmp", finnhub)
    with pytest.raises(TypeError, match="max_batch 0 is below 1"):
        provider_checked("finnhub", replace(finnhub, max_batch=0))


def test_the_tables_are_the_registries_and_list_the_names_as_before() -> None:
    assert list(CHANNEL_TYPES) == list(CHANNEL_MODULES)
    assert list(CHANNEL_MODULES) == ["webhook", "slack", "email", "telegram", "discord", "ntfy"]
    assert list(PROVIDERS) == list(PROVIDER_MODULES)
    for kind, channel in CHANNEL_TYPES.items():
        assert channel.kind == kind
    for name, ptype in PROVIDERS.items():
        assert ptype.name == name


def test_the_package_still_names_its_config_models() -> None:
    code = (
        "import sys; from service.notify import WebhookConfig, CHANNEL_CONFIGS; "
        "import service.notify as n; "
        "print(WebhookConfig is CHANNEL_CONFIGS['webhook'], 'service.notify.email' in sys.modules); "
        "print(n.EmailConfig is CHANNEL_CONFIGS['email'], hasattr(n, 'NoSuchConfig'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["True", "False", "True", "False"]
