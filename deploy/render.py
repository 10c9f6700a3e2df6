"""Render deploy/template.yaml for one set of parameters, as CloudFormation would see it.

``python deploy/render.py FrontDoor=HttpApi Auth=JWT JwtIssuer=https://issuer.example`` prints the
plain CloudFormation that one deployment gets: the SAM transform applied (aws-sam-translator, the library
CloudFormation's own transform runs), the template's Rules checked, every Condition evaluated, resources and
outputs whose condition is false dropped and every ``Fn::If`` replaced by the branch taken. The tests render
every front door, auth and architecture variant this way and lint each result with cfn-lint. Offline: the
transform gets a placeholder image URI (``sam deploy`` fills the real one) and no IAM lookups.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

__all__ = ["RuleViolation", "load_template", "parameter_values", "render"]

TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
PLACEHOLDER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flowers:render"
_NO_VALUE = object()


class RuleViolation(ValueError):
    """The parameters break one of the template's Rules (CloudFormation would refuse them)."""


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    # cfn-lint's loader understands the short-form intrinsics (!Ref, !Sub, ...); JSON round trip: plain types.
    loaded: dict[str, Any] = json.loads(json.dumps(cfn_yaml.loads(path.read_text()), default=str))
    return loaded


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """Defaults overlaid with the overrides; unknown names fail loudly."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise KeyError(f"no such parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise KeyError(f"parameter {name} has no default; pass it")
        if spec["Type"] == "CommaDelimitedList":
            values[name] = raw if isinstance(raw, list) else [p.strip() for p in str(raw).split(",")]
        else:
            values[name] = str(raw)
        allowed = spec.get("AllowedValues")
        if allowed and values[name] not in [str(a) for a in allowed]:
            raise ValueError(f"{name}={values[name]!r} is not one of {allowed}")
    return values


def render(overrides: dict[str, str] | None = None, *, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudFormation template one deployment with these parameters gets (no Conditions left)."""
    source = copy.deepcopy(template if template is not None else load_template())
    params = parameter_values(source, overrides or {})
    _check_rules(source, params)
    transformed = _sam_transform(source, params)
    conditions = transformed.get("Conditions", {})
    truth: dict[str, bool] = {}

    def condition(name: str) -> bool:
        if name not in truth:
            truth[name] = bool(_evaluate(conditions[name], params, condition))
        return truth[name]

    out: dict[str, Any] = {k: v for k, v in transformed.items() if k not in ("Conditions", "Rules")}
    for section in ("Resources", "Outputs"):
        kept = {}
        for name, body in transformed.get(section, {}).items():
            if "Condition" in body and not condition(body["Condition"]):
                continue
            body = {k: v for k, v in body.items() if k != "Condition"}
            kept[name] = _resolve_ifs(body, condition)
        out[section] = kept
    # The console's parameter groups name parameters this variant may no longer have.
    out.get("Metadata", {}).pop("AWS::CloudFormation::Interface", None)
    # The rendered template stands alone: the parameters it still uses, with the chosen values as defaults.
    used = _referenced_names({k: v for k, v in out.items() if k != "Parameters"})
    out["Parameters"] = {k: v for k, v in out.get("Parameters", {}).items() if k in used}
    for name, spec in out["Parameters"].items():
        value = params[name]
        spec["Default"] = ",".join(value) if isinstance(value, list) else value
    return out


def _referenced_names(node: Any) -> set[str]:
    """Names used by Ref and in Fn::Sub strings anywhere below node."""
    names: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                names.add(value)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                names.update(n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text))
            names |= _referenced_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _referenced_names(value)
    return names


def _sam_transform(template: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform

    # The translator warns about its own feature toggles and usage metrics on every call: not ours to fix.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and props.get("PackageType") == "Image":
            props.setdefault("ImageUri", PLACEHOLDER_IMAGE)
    transformed: dict[str, Any] = transform(template, dict(params), _NoManagedPolicies())
    return transformed


def _check_rules(template: dict[str, Any], params: dict[str, Any]) -> None:
    for name, rule in template.get("Rules", {}).items():
        applies = "RuleCondition" not in rule or _evaluate(rule["RuleCondition"], params, None)
        if not applies:
            continue
        for assertion in rule["Assertions"]:
            if not _evaluate(assertion["Assert"], params, None):
                raise RuleViolation(f"{name}: {assertion.get('AssertDescription', 'assertion failed')}")


def _evaluate(expr: Any, params: dict[str, Any], condition: Any) -> Any:
    """Condition functions over parameter values (what Conditions and Rules may use)."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Condition":
            return condition(arg)
        if fn == "Fn::Equals":
            left, right = (_evaluate(a, params, condition) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _evaluate(arg[0], params, condition)
        if fn == "Fn::And":
            return all(_evaluate(a, params, condition) for a in arg)
        if fn == "Fn::Or":
            return any(_evaluate(a, params, condition) for a in arg)
        raise ValueError(f"unsupported function in a condition: {fn}")
    return expr


def _resolve_ifs(node: Any, condition: Any) -> Any:
    if isinstance(node, dict):
        if len(node) == 1 and "Fn::If" in node:
            name, when_true, when_false = node["Fn::If"]
            return _resolve_ifs(when_true if condition(name) else when_false, condition)
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        resolved = {k: _resolve_ifs(v, condition) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
    if isinstance(node, list):
        items = [_resolve_ifs(v, condition) for v in node]
        return [v for v in items if v is not _NO_VALUE]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parameters", nargs="*", metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    overrides = dict(p.split("=", 1) for p in args.parameters)
    try:
        rendered = render(overrides)
    except (KeyError, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    json.dump(rendered, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
