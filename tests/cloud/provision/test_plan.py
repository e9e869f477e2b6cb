"""The plan and its policy documents: pure values, no AWS call."""

import json
from typing import Any

import pytest

from system.cli import main
from system.cloud.provision.plan import build_plan
from system.errors import ConfigError

ACCOUNT = "123456789012"
IOT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive")


def _statements(document: dict[str, Any], action: str) -> list[dict[str, Any]]:
    found = []
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions or "iot:*" in actions or "*" in actions:
            found.append(statement)
    return found


def _resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def test_plan_names_every_resource_after_the_project_and_account() -> None:
    plan = build_plan("demo", region="eu-west-1", account_id=ACCOUNT)
    assert plan.bucket == f"edgesim-demo-{ACCOUNT}-eu-west-1" and len(plan.bucket) <= 63
    assert plan.thing_name == "edge-device-demo"
    assert plan.thing_group == "defect-detection-demo-group"
    assert plan.model_package_groups == (
        "defect-detection-img-classification-demo",
        "defect-detection-semantic-segmentation-demo",
    )
    assert plan.role_alias == plan.role_name == plan.policy_name == "edgesim-demo-device"
    kinds = [kind for kind, _ in plan.resources()]
    assert {"bucket", "thing group", "thing", "iot policy", "iam role", "role alias", "certificate"} <= set(kinds)
    assert build_plan("demo", region="eu-west-1", account_id=ACCOUNT, thing="cam-7").thing_name == "cam-7"


@pytest.mark.parametrize(
    ("project", "thing"), [("Demo", None), ("x" * 25, None), ("-a", None), ("ok", "a/b"), ("ok", "#"), ("ok", "a:b")]
)
def test_bad_project_or_thing_names_are_config_errors(project: str, thing: str | None) -> None:
    with pytest.raises(ConfigError):
        build_plan(project, region="us-east-1", account_id=ACCOUNT, thing=thing)


def test_iot_policy_is_least_privilege() -> None:
    document = build_plan("demo", region="us-east-1", account_id=ACCOUNT).policy_document
    text = json.dumps(document)
    assert "$aws/*" not in text and "topic/$aws/things/*" not in text
    for action in IOT_ACTIONS:
        statements = _statements(document, action)
        assert statements, action
        for statement in statements:
            assert statement["Effect"] == "Allow"
            for resource in _resources(statement):
                assert resource != "*" and not resource.endswith(":*"), (action, resource)
                assert "${iot:Connection.Thing.ThingName}" in resource, (action, resource)
    (connect,) = _statements(document, "iot:Connect")
    assert _resources(connect) == [f"arn:aws:iot:us-east-1:{ACCOUNT}:client/${{iot:Connection.Thing.ThingName}}"]
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    topics = {r.split(":", 5)[5] for a in IOT_ACTIONS[1:] for s in _statements(document, a) for r in _resources(s)}
    assert topics == {
        "topic/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
        "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/jobs/*",
        "topic/edgesim/${iot:Connection.Thing.ThingName}/telemetry/*",
    }
    (assume,) = _statements(document, "iot:AssumeRoleWithCertificate")
    assert _resources(assume) == [f"arn:aws:iot:us-east-1:{ACCOUNT}:rolealias/edgesim-demo-device"]


def test_role_allows_only_the_project_bucket_prefixes_and_only_the_credentials_provider() -> None:
    plan = build_plan("demo", region="us-east-1", account_id=ACCOUNT)
    resources = {r for s in plan.role_policy["Statement"] for r in _resources(s)}
    assert resources == {
        f"arn:aws:s3:::{plan.bucket}/models/*",
        f"arn:aws:s3:::{plan.bucket}/edge-agent-inference-data-capture/*",
    }
    actions = {s["Action"] for s in plan.role_policy["Statement"]}
    assert actions == {"s3:GetObject", "s3:PutObject"}
    (trust,) = plan.trust_policy["Statement"]
    assert trust["Principal"] == {"Service": "credentials.iot.amazonaws.com"}


def test_dry_run_with_an_account_prints_the_plan_without_any_aws_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("boto3.Session", None)  # any AWS call would fail loudly
    assert main(["provision", "--project", "demo", "--dry-run", "--account", ACCOUNT, "--region", "eu-west-1"]) == 0
    out = capsys.readouterr().out
    assert f"edgesim-demo-{ACCOUNT}-eu-west-1" in out and "edge-device-demo" in out
    assert "iot:Connection.Thing.ThingName" in out and "AES256" in out


def test_account_without_dry_run_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--project", "demo", "--account", ACCOUNT]) == 2
    assert "--account is only for --dry-run" in capsys.readouterr().err
