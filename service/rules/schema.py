"""The JSON Schema of the rule file, for editors: the file model plus each channel type's
options, injected like the loader's, so a new channel type appears with no change here.

It agrees with `check` on the shape of the file (tests/rules/test_schema.py validates
every rule file in the repository with a standard validator): what `check` accepts, the
schema accepts. What only `check` can tell (an unknown variable, an undefined channel)
the schema leaves to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from service.rules.model import NAME, FileModel, RuleModel


def rule_file_schema(channel_configs: Mapping[str, type[BaseModel]]) -> dict[str, Any]:
    schema = FileModel.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Earnwatch rule file"
    defs = schema.setdefault("$defs", {})
    rule = RuleModel.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs.update(rule.pop("$defs", {}))
    defs["RuleModel"] = rule
    schema["properties"]["rules"] = {"type": "array", "items": {"$ref": "#/$defs/RuleModel"}}
    schema["required"] = ["rules"]  # a file without rules is a bad edit; `rules: []` is not
    variants = []
    for kind, model in sorted(channel_configs.items()):
        options = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
        defs.update(options.pop("$defs", {}))
        options.setdefault("properties", {})["type"] = {"const": kind}
        options["required"] = ["type", *options.get("required", [])]
        options["title"] = f"{kind} channel"
        variants.append(options)
    schema["properties"]["channels"] = {
        "type": "object",
        "propertyNames": {"pattern": NAME},
        "additionalProperties": {"oneOf": variants} if variants else {"type": "object"},
    }
    return schema
