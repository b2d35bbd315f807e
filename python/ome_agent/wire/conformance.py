"""Optional check of every written entry against OME's schema (wire format).

``docs/ome-modelentry.schema.json`` transcribes the Go structs OME's controller decodes
each ConfigMap value into; one member of the wrong JSON type and OME drops the entry.
When ``OME_AGENT_WIRE_SCHEMA`` names that file, :func:`check` validates each entry
before it is written, with the ``jsonschema`` package, and refuses one that breaks it.
The test suite sets it for every agent and controller it runs, in-process or not, so
no entry of any state or source reaches a ConfigMap untested; an operator may set it
to check a build against a newer schema. Unset, it costs nothing.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

ENV = "OME_AGENT_WIRE_SCHEMA"


class WireContractError(ValueError):
    """An entry that OME's decoder would reject; ``member`` is the JSON path of the
    member at fault (``config/maxTokens``), the message says the rule."""

    def __init__(self, member: str, rule: str) -> None:
        super().__init__(f"entry member {member} breaks OME's schema: {rule}")
        self.member = member


def check(text: str) -> None:
    """Raise :class:`WireContractError` if the entry ``text`` breaks the schema named by
    ``OME_AGENT_WIRE_SCHEMA``; when it is unset, return at once without parsing."""
    path = os.environ.get(ENV)
    if path:
        _validator(path)(json.loads(text))


@functools.cache
def _validator(path: str) -> Callable[[Any], None]:
    import jsonschema  # only when the check is asked for: a test and audit dependency

    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)

    def validate(entry: Any) -> None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(entry))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(entry)"
            raise WireContractError(where, error.message)

    return validate
