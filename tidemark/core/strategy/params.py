"""Strategy parameter schemas and their strict validation.

A schema is ``{"id", "name", "inputs": {name: spec}}`` where a spec has a
``type`` (int, float, bool, select), a ``default``, optional ``min``/``max``
and, for select, ``options``. Unknown parameters, wrong types and values out
of range are errors that name the parameter.
"""

from __future__ import annotations

from typing import Any

TYPES = ("int", "float", "bool", "select")


class ParamError(ValueError):
    """A strategy schema or parameter value is invalid."""


def check_schema(schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict) or "id" not in schema:
        raise ParamError("schema() must return a dict with at least an 'id'")
    inputs = schema.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ParamError(f"{schema['id']}: schema 'inputs' must be a dict")
    for name, spec in inputs.items():
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise ParamError(f"{schema['id']}: input {name!r} needs a type in {TYPES}")
        if "default" not in spec:
            raise ParamError(f"{schema['id']}: input {name!r} needs a default")
        if spec["type"] == "select" and not spec.get("options"):
            raise ParamError(f"{schema['id']}: select input {name!r} needs options")
        _coerce(schema["id"], name, spec, spec["default"])
    return schema


def resolve(schema: dict[str, Any], given: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with ``given``, validated and coerced; sorted by name."""
    inputs: dict[str, Any] = schema.get("inputs", {})
    given = dict(given or {})
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise ParamError(
            f"{schema['id']}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(inputs))}"
        )
    out = {}
    for name in sorted(inputs):
        spec = inputs[name]
        out[name] = _coerce(schema["id"], name, spec, given.get(name, spec["default"]))
    return out


def parse_cli_value(text: str) -> Any:
    """``--param k=v`` values: bool, int, float, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _coerce(sid: str, name: str, spec: dict[str, Any], value: Any) -> Any:
    kind = spec["type"]
    where = f"{sid}: parameter {name!r}"
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ParamError(f"{where} must be true or false, not {value!r}")
    if kind == "select":
        if value not in spec["options"]:
            raise ParamError(f"{where} must be one of {spec['options']}, not {value!r}")
        return value
    if isinstance(value, bool):
        raise ParamError(f"{where} must be a number, not {value!r}")
    try:
        number = int(value) if kind == "int" else float(value)
    except (TypeError, ValueError):
        raise ParamError(f"{where} must be {kind}, not {value!r}") from None
    if kind == "int" and float(value) != number:
        raise ParamError(f"{where} must be a whole number, not {value!r}")
    if "min" in spec and number < spec["min"]:
        raise ParamError(f"{where} = {number} is below min {spec['min']}")
    if "max" in spec and number > spec["max"]:
        raise ParamError(f"{where} = {number} is above max {spec['max']}")
    return number
