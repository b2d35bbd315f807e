"""Does a model belong on this node? (reconcile core, docs/architecture.md, layer 4).

Evaluates a model's ``storage.nodeSelector`` and the required terms of its
``storage.nodeAffinity`` against the node's name and labels, with Kubernetes' own
rules (k8s.io/component-helpers nodeaffinity), so a model lands exactly where a pod
with the same selector could be scheduled:

- every ``nodeSelector`` entry must equal the node's label;
- no required affinity means no constraint; a required affinity whose terms are all
  empty or invalid matches nothing; terms are ORed, the requirements of a term ANDed;
- ``In``, ``NotIn`` (also true when the label is absent), ``Exists``, ``DoesNotExist``,
  ``Gt``/``Lt`` (one bound; the label must be present and numeric). Kubernetes compares
  ``Gt``/``Lt`` as integers; we also compare Kubernetes quantities (``500Gi`` >
  ``200Gi``, docs/architecture.md, "Field names"), and a non-numeric label never matches;
- ``matchFields`` supports only ``metadata.name`` with ``In``/``NotIn`` and exactly one
  value, like Kubernetes;
- preferred terms never decide: they rank nodes for pods, they do not exclude any.

The result carries a short reason when the node is not eligible, for logs and status.
:func:`invalid_requirement` names the first requirement Kubernetes' validation would
reject, for adapters that refuse such a model instead of never matching it.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ome_agent.api import NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, StorageSpec
from ome_agent.reconcile.quantity import compare_numeric, parse_quantity

NODE_NAME_FIELD = "metadata.name"
# Kubernetes compares Gt/Lt bounds as int64; a bound beyond it can never be meant
_BOUND_LIMIT = 2**63
_REQUIRED = "spec.storage.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    reason: str = ""  # why not, when not eligible; empty when eligible


ELIGIBLE = Eligibility(True)


def eligibility(
    storage: StorageSpec | None, node_name: str, node_labels: Mapping[str, str]
) -> Eligibility:
    """Whether the node named ``node_name`` with ``node_labels`` should hold the model."""
    if storage is None:
        return ELIGIBLE
    for key, wanted in storage.node_selector.items():
        if node_labels.get(key) != wanted:
            return Eligibility(False, f"nodeSelector {key}={wanted}: {_has(node_labels, key)}")
    return _affinity(storage.node_affinity, node_name, node_labels)


def _affinity(
    affinity: NodeAffinity | None, node_name: str, node_labels: Mapping[str, str]
) -> Eligibility:
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is None:
        return ELIGIBLE
    terms = required.node_selector_terms
    if not terms:
        return Eligibility(False, "nodeAffinity requires one of zero terms: nothing can match")
    misses = []
    for index, term in enumerate(terms, start=1):
        miss = _term_miss(term, node_name, node_labels)
        if miss is None:
            return ELIGIBLE
        misses.append(miss if len(terms) == 1 else f"term {index}: {miss}")
    return Eligibility(False, "no nodeAffinity term matched: " + "; ".join(misses))


def _term_miss(
    term: NodeSelectorTerm, node_name: str, node_labels: Mapping[str, str]
) -> str | None:
    """Why ``term`` does not match (the first requirement that fails), or None."""
    if not term.match_expressions and not term.match_fields:
        return "empty term (matches no node)"
    for expression in term.match_expressions:
        miss = _expression_miss(expression, node_labels)
        if miss is not None:
            return miss
    for field in term.match_fields:
        miss = _field_miss(field, node_name)
        if miss is not None:
            return miss
    return None


def _expression_miss(req: NodeSelectorRequirement, labels: Mapping[str, str]) -> str | None:
    invalid = _invalid_values(req)
    if invalid:
        return f"{_show(req)}: invalid, {invalid}"
    value = labels.get(req.key)
    op = req.operator
    if op == "In":
        ok = value is not None and value in req.values
    elif op == "NotIn":
        ok = value is None or value not in req.values
    elif op == "Exists":
        ok = value is not None
    elif op == "DoesNotExist":
        ok = value is None
    else:  # Gt / Lt
        if value is None:
            return f"{_show(req)}: node has no label {req.key}"
        order = compare_numeric(value, req.values[0])
        if order is None:
            return f"{_show(req)}: node has {req.key}={value}, not a number"
        ok = order > 0 if op == "Gt" else order < 0
    return None if ok else f"{_show(req)}: {_has(labels, req.key)}"


def _invalid_values(req: NodeSelectorRequirement) -> str:
    """What Kubernetes' validation would reject in ``req`` (such a term never matches)."""
    count = len(req.values)
    if req.operator in ("In", "NotIn") and count == 0:
        return f"{req.operator} needs at least one value"
    if req.operator in ("Exists", "DoesNotExist") and count:
        return f"{req.operator} takes no values"
    if req.operator in ("Gt", "Lt"):
        if count != 1:
            return f"{req.operator} needs exactly one value"
        try:
            bound = parse_quantity(req.values[0])
        except ValueError:
            return f"{_brief(req.values[0])} is not an integer or quantity"
        if abs(bound) >= _BOUND_LIMIT:
            return f"{_brief(req.values[0])} is out of range (below 2^63 in magnitude)"
    return ""


def _brief(value: str) -> str:
    """A value quoted for a message, cut short: a bound may be 100,000 digits long."""
    return repr(value) if len(value) <= 40 else repr(value[:40]) + f"... ({len(value)} chars)"


def invalid_requirement(storage: StorageSpec | None) -> str | None:
    """``<field>: <why>`` for the first required affinity requirement that is invalid
    (e.g. a ``Gt`` bound that is no number, or with two values), or None."""
    affinity = storage.node_affinity if storage is not None else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is None:
        return None
    for t, term in enumerate(required.node_selector_terms):
        for e, req in enumerate(term.match_expressions):
            invalid = _invalid_values(req)
            if invalid:
                where = f"{_REQUIRED}.nodeSelectorTerms[{t}].matchExpressions[{e}]"
                return f"{where} ({_show(req)}): {invalid}"
    return None


def _field_miss(req: NodeSelectorRequirement, node_name: str) -> str | None:
    if req.key != NODE_NAME_FIELD:
        return f"matchFields {req.key}: invalid, only {NODE_NAME_FIELD} is supported"
    if req.operator not in ("In", "NotIn") or len(req.values) != 1:
        return f"matchFields {_show(req)}: invalid, use In or NotIn with exactly one value"
    matches = node_name == req.values[0]
    if matches == (req.operator == "In"):
        return None
    return f"matchFields {_show(req)}: node is {node_name}"


def _show(req: NodeSelectorRequirement) -> str:
    if req.operator in ("Exists", "DoesNotExist") and not req.values:
        return f"{req.key} {req.operator}"
    return f"{req.key} {req.operator} {_list(req.values)}"


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(v if len(v) <= 40 else v[:40] + "..." for v in values) + "]"


def _has(labels: Mapping[str, str], key: str) -> str:
    value = labels.get(key)
    return f"node has no label {key}" if value is None else f"node has {key}={value}"
