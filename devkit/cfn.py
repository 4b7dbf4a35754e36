"""CloudFormation for the local stack: ``template.yaml`` loaded with its short-form tags, intrinsics resolved."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ddb_backup.errors import DdbBackupError

#: The account id every local ARN carries.
ACCOUNT = "123456789012"


class CfnLoader:
    """PyYAML loader that understands CloudFormation's short-form tags."""

    @staticmethod
    def load(text: str) -> dict[str, Any]:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        def construct(tag: str) -> Callable[[Any, Any], Any]:
            name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

            def build(loader: Any, node: Any) -> Any:
                if isinstance(node, yaml.ScalarNode):
                    value: Any = loader.construct_scalar(node)
                    if tag == "GetAtt":
                        value = value.split(".", 1)
                elif isinstance(node, yaml.SequenceNode):
                    value = loader.construct_sequence(node, deep=True)
                else:
                    value = loader.construct_mapping(node, deep=True)
                return {name: value}

            return build

        for tag in (
            "Ref",
            "GetAtt",
            "Sub",
            "Join",
            "If",
            "Equals",
            "Not",
            "And",
            "Or",
            "Select",
            "Split",
            "FindInMap",
            "ImportValue",
            "Base64",
            "Condition",
            "GetAZs",
        ):
            Loader.add_constructor(f"!{tag}", construct(tag))
        doc = yaml.load(text, Loader=Loader)
        if not isinstance(doc, dict):
            raise DdbBackupError("template.yaml is not a mapping")
        return doc


class Resolver:
    """Resolve the intrinsic functions the template uses, for one local deployment."""

    def __init__(
        self, template: dict[str, Any], parameters: dict[str, str], stack: str, region: str, *, checked: bool = True
    ) -> None:
        self.template = template
        self.stack = stack
        self.region = region
        self.params: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if value is None:
                raise DdbBackupError(f"template parameter {name} has no default: give it a value")
            self.params[name] = (
                value.split(",") if spec.get("Type") == "CommaDelimitedList" and isinstance(value, str) else value
            )
        unknown = set(parameters) - set(self.params)
        if unknown:
            raise DdbBackupError(f"unknown template parameters: {sorted(unknown)}")
        self.refs: dict[str, str] = {}  # logical id -> Ref value
        self.attrs: dict[tuple[str, str], str] = {}
        self.conditions: dict[str, bool] = {}
        for name, cond in template.get("Conditions", {}).items():  # a condition may name an earlier one
            self.conditions[name] = bool(self(cond))
        if checked:  # as CloudFormation refuses a stack: parameters outside their constraints, failed Rules
            self.check_parameters(template.get("Parameters", {}))
            if refused := self.refusals():
                raise DdbBackupError(f"the template's Rules refuse these parameters: {'; '.join(refused)}")

    def check_parameters(self, specs: dict[str, Any]) -> None:
        """CloudFormation's refusal of a String parameter outside its AllowedValues or AllowedPattern."""
        for name, spec in specs.items():
            value = self.params[name]
            if not isinstance(value, str):
                continue
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                raise DdbBackupError(f"Parameter '{name}' must be one of AllowedValues: {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                raise DdbBackupError(f"Parameter '{name}' must match pattern {spec['AllowedPattern']}")

    def refusals(self) -> list[str]:
        """The AssertDescription of each template Rule assertion that fails where its RuleCondition holds."""
        out = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self(rule["RuleCondition"]):
                continue
            failed = [a for a in rule.get("Assertions", []) if not self(a["Assert"])]
            out += [" ".join(str(a.get("AssertDescription", "")).split()) for a in failed]
        return out

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.stack,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }[name]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise DdbBackupError(f"template refers to {name}, which the local stack has not created")

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def one(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                logical, attr = token.split(".", 1)
                return str(self.attrs[(logical, attr)])
            value = self.ref(token)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def __call__(self, node: Any) -> Any:  # noqa: C901 (one branch per intrinsic function)
        if isinstance(node, list):
            return [v for v in (self(x) for x in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.attrs[(arg[0], arg[1])]
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self.sub(arg[0], {k: self(v) for k, v in arg[1].items()})
                return self.sub(arg, {})
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self(arg[1]))
            if key == "Fn::If":
                return self(arg[1] if self.conditions[arg[0]] else arg[2])
            if key == "Fn::Equals":
                return self(arg[0]) == self(arg[1])
            if key == "Fn::Not":
                return not self(arg[0])
            if key == "Fn::And":
                return all(self(a) for a in arg)
            if key == "Fn::Or":
                return any(self(a) for a in arg)
            if key == "Fn::Select":
                return self(arg[1])[int(self(arg[0]))]
            if key == "Fn::Split":
                return self(arg[1]).split(arg[0])
            if key == "Condition":
                return self.conditions[arg]
        return {k: v for k, v in ((k, self(v)) for k, v in node.items()) if v is not None}
