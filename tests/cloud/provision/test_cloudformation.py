"""The CloudFormation template: the committed file is what `edgesim provision --cloudformation` prints,
cfn-lint finds nothing in it, and, resolved for an account, it makes what provisioning makes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint

from system.cli import main
from system.cloud.provision.cloudformation import TEMPLATE_PATH, render, template
from system.cloud.provision.plan import TAG_KEY, build_plan

ROOT = Path(__file__).resolve().parents[3]
NAME_PROPERTIES = {
    "Bucket": "BucketName",
    "Thing": "ThingName",
    "ThingGroup": "ThingGroupName",
    "DevicePolicy": "PolicyName",
    "DeviceRole": "RoleName",
    "RoleAlias": "RoleAlias",
}
_SUB = re.compile(r"\$\{(!?)([^}]+)\}")


class Resolved:
    """What CloudFormation would make of the template for these parameters in one account and region."""

    def __init__(self, body: dict[str, Any], parameters: dict[str, str], account: str, region: str) -> None:
        self.body = body
        self.values = {"AWS::AccountId": account, "AWS::Region": region, "AWS::Partition": "aws"}
        for name, spec in body["Parameters"].items():
            self.values[name] = parameters.get(name, str(spec.get("Default", "")))

    def ref(self, name: str) -> str:
        if name in self.values:
            return self.values[name]
        return str(self.resolve(self.body["Resources"][name]["Properties"][NAME_PROPERTIES[name]]))

    def condition(self, name: str) -> bool:
        [left, right] = self.body["Conditions"][name]["Fn::Equals"]
        return bool(self.resolve(left) == self.resolve(right))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::Sub"}:
            return _SUB.sub(lambda m: "${" + m[2] + "}" if m[1] else self.ref(m[2]), value["Fn::Sub"])
        if set(value) == {"Fn::If"}:
            condition, then, otherwise = value["Fn::If"]
            return self.resolve(then if self.condition(condition) else otherwise)
        if set(value) == {"Fn::GetAtt"}:
            return "<{}.{}>".format(*value["Fn::GetAtt"])
        return {key: self.resolve(item) for key, item in value.items()}

    def properties(self, resource: str) -> dict[str, Any]:
        resolved: dict[str, Any] = self.resolve(self.body["Resources"][resource]["Properties"])
        return resolved


def test_the_committed_template_is_the_generated_one() -> None:
    committed = (ROOT / TEMPLATE_PATH).read_text()
    assert committed == render(), f"regenerate it: edgesim provision --cloudformation > {TEMPLATE_PATH}"


# Regions with AWS IoT Core, its credentials provider and SageMaker (cfn-lint knows IoT is not in every region).
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-southeast-2"]


def _problems(text: str) -> list[str]:
    """Errors and warnings, as the cfn-lint command reports by default (informational rules need --info)."""
    return [str(match) for match in lint(text, regions=REGIONS) if not match.rule.id.startswith("I")]


def test_cfn_lint_finds_nothing_in_the_template() -> None:
    assert _problems((ROOT / TEMPLATE_PATH).read_text()) == []


def test_cfn_lint_is_not_blind() -> None:
    broken = template()
    broken["Resources"]["RoleAlias"]["Properties"]["RoleArn"] = {"Fn::GetAtt": ["NoSuchRole", "Arn"]}
    assert any("NoSuchRole" in problem for problem in _problems(json.dumps(broken)))


@pytest.mark.parametrize("thing", [None, "press-7"])
def test_the_template_makes_what_provisioning_makes(thing: str | None) -> None:
    plan = build_plan("demo", region="eu-west-1", account_id="123456789012", thing=thing)
    stack = Resolved(template(), {"Project": "demo", "ThingName": thing or ""}, "123456789012", "eu-west-1")

    assert stack.ref("Bucket") == plan.bucket
    assert stack.ref("ThingGroup") == plan.thing_group
    assert stack.ref("Thing") == plan.thing_name
    assert stack.ref("DevicePolicy") == plan.policy_name
    assert stack.ref("DeviceRole") == plan.role_name
    assert stack.ref("RoleAlias") == plan.role_alias
    groups = [stack.properties(f"ModelPackageGroup{i}")["ModelPackageGroupName"] for i in (1, 2)]
    assert tuple(groups) == plan.model_package_groups

    assert stack.properties("DevicePolicy")["PolicyDocument"] == plan.policy_document
    role = stack.properties("DeviceRole")
    assert role["AssumeRolePolicyDocument"] == plan.trust_policy
    assert role["Policies"] == [{"PolicyName": plan.role_policy_name, "PolicyDocument": plan.role_policy}]
    assert int(stack.properties("RoleAlias")["CredentialDurationSeconds"]) == plan.credential_seconds
    bucket = stack.properties("Bucket")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["Tags"] == [{"Key": TAG_KEY, "Value": "demo"}]


def test_provision_cloudformation_prints_it_without_calling_aws(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    assert main(["provision", "--cloudformation"]) == 0
    assert json.loads(capsys.readouterr().out) == template()


def test_provision_without_a_project_says_it_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--dry-run"]) != 0
    assert "--project is required" in capsys.readouterr().err
