"""JSON Schema for pipeline files, built from every registered stage's typed config."""

from __future__ import annotations

from typing import Any

from ragsel.registry import get_stage_class, stage_names


def stage_schema(name: str, defs: dict[str, Any]) -> dict[str, Any]:
    cls = get_stage_class(name)
    schema = cls.Config.model_json_schema(ref_template="#/$defs/{model}")
    for key, sub in schema.pop("$defs", {}).items():
        defs.setdefault(key, sub)
    props = {
        "type": {"const": name, "description": (cls.__doc__ or "").strip().split("\n")[0]},
        "name": {"type": "string"},
    }
    props.update(schema.get("properties", {}))
    return {
        "type": "object",
        "title": name,
        "properties": props,
        "required": ["type", *schema.get("required", [])],
        "additionalProperties": False,
    }


def pipeline_json_schema(names: list[str] | None = None) -> dict[str, Any]:
    """The schema of a pipeline YAML file covering ``names`` (default: every stage)."""
    defs: dict[str, Any] = {}
    stages = []
    skipped = []
    for name in names or stage_names():
        try:
            stages.append(stage_schema(name, defs))
        except ImportError:  # a connector stage whose framework is not installed
            skipped.append(name)
    stage_ref = {"oneOf": stages}
    conn = {
        "oneOf": [
            {"type": "string", "pattern": r"^\s*[\w-]+(\.\w+)?\s*->\s*[\w-]+(\.\w+)?\s*$"},
            {
                "type": "object",
                "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                "required": ["from", "to"],
                "additionalProperties": False,
            },
        ]
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ragsel pipeline",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"const": 1},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "output": {"type": "string"},
            "stages": {
                "oneOf": [
                    {"type": "object", "additionalProperties": stage_ref},
                    {"type": "array", "items": stage_ref},
                ]
            },
            "connections": {"type": "array", "items": conn},
            "inputs": {"type": "array", "items": {"type": "string", "pattern": r"^[\w-]+\.\w+$"}},
        },
        "required": ["stages"],
        "$defs": defs,
        **({"x-skipped-stages": skipped} if skipped else {}),
    }
