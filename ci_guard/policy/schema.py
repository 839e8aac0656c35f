"""The JSON Schema of the policy language, generated from the pydantic models.

The committed ``policies/schema.json`` must not depend on the pydantic release that generated it:
pydantic 2.14 stopped writing a ``pattern`` for the string form of constrained decimals, so a fresh
install produced a different file. Decimals are therefore written here, always in one shape.
"""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://github.com/ci-guard/ci-guard/blob/main/policies/schema.json"

# A decimal written as a string: optional sign, digits, optional fraction; not just a sign or a dot.
DECIMAL_STRING_PATTERN = r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"
_NUMBER_BOUNDS = (("multiple_of", "multipleOf"), ("le", "maximum"), ("ge", "minimum"), ("lt", "exclusiveMaximum"),
                  ("gt", "exclusiveMinimum"))


def _generator() -> type:
    from pydantic.json_schema import GenerateJsonSchema

    class StableJsonSchema(GenerateJsonSchema):
        def decimal_schema(self, schema: Any) -> dict[str, Any]:
            number: dict[str, Any] = {"type": "number"}
            for key, name in _NUMBER_BOUNDS:
                if schema.get(key) is not None:
                    number[name] = float(schema[key])
            string = {"type": "string", "pattern": DECIMAL_STRING_PATTERN}
            if self.mode != "validation":
                return string
            return {"anyOf": [dict(sorted(number.items())), string]}

    return StableJsonSchema


def policy_schema() -> dict[str, Any]:
    from ci_guard.policy.models import Policy

    schema = Policy.model_json_schema(by_alias=True, schema_generator=_generator())
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "ci-guard policy", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"
