"""The JSON Schema (`earnwatch schema`) agrees with `check` (issue 9.11), validated with
a standard validator (jsonschema, which check-jsonschema and editors' plug-ins follow)
against every example and test rule file in the repository."""

import json
import re
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import yaml

from service.cli import _channel_configs
from service.errors import RuleFileError
from service.rules import load_rules
from service.rules.schema import rule_file_schema
from tests.test_cli import earnwatch

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(__file__).parent / "testdata"
ENV = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/XYZ",
    "WEBHOOK_SECRET": "s3",
    "DEMO_WEBHOOK_URL": "http://127.0.0.1:9/hook",
}
#: Files `check` refuses for reasons no JSON Schema can see, and why.
CHECK_ONLY: dict[str, str] = {}


def rule_files() -> Iterator[tuple[str, str]]:
    """(name, text) of every rule file in the repository: the README's yaml blocks that
    are rule files, the demo's, and every test rule file."""
    readme = (ROOT / "README.md").read_text()
    for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", readme, re.S), 1):
        if re.search(r"^(rules|channels|groups):", block, re.M):
            yield f"README.md#{number}", block
    yield "demo/rules.yaml", (ROOT / "service/data/demo/rules.yaml").read_text()
    for path in sorted(TESTDATA.glob("*.yaml")):
        yield path.name, path.read_text()


FILES = dict(rule_files())


def valid_by_check(text: str) -> bool:
    try:
        load_rules(text, source="r", env=ENV, channel_configs=_channel_configs())
    except RuleFileError:
        return False
    return True


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = rule_file_schema(_channel_configs())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)  # the schema itself is valid JSON Schema
    return cls(schema)  # type: ignore[no-any-return]


def test_every_kind_of_rule_file_is_found() -> None:
    assert {"README.md#1", "demo/rules.yaml", "good.yaml", "bad_three.yaml"} <= set(FILES)


@pytest.mark.parametrize("name", FILES)
def test_the_schema_agrees_with_check(name: str, validator: jsonschema.protocols.Validator) -> None:
    text = FILES[name]
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]
    if valid_by_check(text):
        assert errors == [], f"{name} passes check, but not the schema"
    elif name in CHECK_ONLY:
        assert errors == [], f"{name}: the schema now tells {CHECK_ONLY[name]}: update CHECK_ONLY"
    else:
        assert errors, f"{name} fails check, but passes the schema"


def test_bad_three_fails_the_schema_only_on_what_it_can_tell(
    validator: jsonschema.protocols.Validator,
) -> None:
    text = (TESTDATA / "bad_three.yaml").read_text().replace("10 minutes", "10m")
    assert not valid_by_check(text)
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    assert not validator.is_valid(yaml.safe_load((TESTDATA / "bad_three.yaml").read_text()))


def test_the_printed_schema_takes_the_readme_example(tmp_path: Path) -> None:
    # As an editor gets it: `earnwatch schema > rules.schema.json`.
    result = earnwatch("schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(yaml.safe_load(FILES["README.md#1"]))] == []
    assert not validator.is_valid(yaml.safe_load(FILES["no_rules.yaml"]))
