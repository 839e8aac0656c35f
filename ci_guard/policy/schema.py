"""The JSON Schema of the policy language, generated from the pydantic models."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://github.com/ci-guard/ci-guard/blob/main/policies/schema.json"


def policy_schema() -> dict[str, Any]:
    from ci_guard.policy.models import Policy

    schema = Policy.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "ci-guard policy", **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, ensure_ascii=False) + "\n"
