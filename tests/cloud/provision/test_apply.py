"""Provisioning against a moto server: create, rerun (idempotent), bundle, dry run, destroy."""

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from system.cli import main
from system.cloud.provision import bundle
from system.cloud.provision.apply import Provisioner
from system.cloud.provision.destroy import Destroyer
from system.cloud.provision.plan import ProvisionPlan
from system.cloud.provision.report import StepLog
from system.cloud.provision.session import AwsClients
from system.edge.device_config import load_device_config
from system.errors import ConfigError

EMPTY: dict[str, list[str]] = {k: [] for k in ("buckets", "things", "groups", "policies", "aliases", "roles")}


def _apply(clients: AwsClients, plan: ProvisionPlan, out: Path, root_ca: Path | None = None) -> StepLog:
    log = StepLog()
    Provisioner(clients, plan, out, log).apply(root_ca)
    return log


def _project_state(clients: AwsClients, plan: ProvisionPlan) -> dict[str, Any]:
    """Everything of the project that list calls can see (names containing the project)."""
    iot, iam, s3 = clients.make("iot"), clients.make("iam"), clients.make("s3")
    mine = plan.project
    return {
        "buckets": [b["Name"] for b in s3.list_buckets()["Buckets"] if mine in b["Name"]],
        "things": [t["thingName"] for t in iot.list_things()["things"] if mine in t["thingName"]],
        "groups": [g["groupName"] for g in iot.list_thing_groups()["thingGroups"] if mine in g["groupName"]],
        "policies": [p["policyName"] for p in iot.list_policies()["policies"] if mine in p["policyName"]],
        "aliases": [a for a in iot.list_role_aliases()["roleAliases"] if mine in a],
        "roles": [r["RoleName"] for r in iam.list_roles()["Roles"] if mine in r["RoleName"]],
    }


def test_apply_creates_everything_and_a_second_run_creates_nothing(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    first = _apply(clients, project_plan, out)
    created = {(step.kind, step.name) for step in first.with_status("created")}
    assert {kind for kind, _ in created} >= {
        "bucket", "thing group", "thing", "thing in group", "iot policy", "iam role", "iam role policy",
        "role alias", "certificate", "policy attachment", "model package group",
    }  # fmt: skip
    key_before = (out / bundle.KEY_FILE).read_text()

    second = _apply(clients, project_plan, out)
    assert second.with_status("created") == [] and second.with_status("warning") == []
    assert {(s.kind, s.name) for s in second.with_status("exists")} >= {
        (kind, name) for kind, name in created if kind != "certificate"
    }
    assert (out / bundle.KEY_FILE).read_text() == key_before
    iot = clients.make("iot")
    assert len(iot.list_thing_principals(thingName=project_plan.thing_name)["principals"]) == 1

    s3 = clients.make("s3")
    assert s3.get_bucket_versioning(Bucket=project_plan.bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=project_plan.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    policy = json.loads(iot.get_policy(policyName=project_plan.policy_name)["policyDocument"])
    assert policy == project_plan.policy_document
    alias = iot.describe_role_alias(roleAlias=project_plan.role_alias)["roleAliasDescription"]
    assert alias["roleArn"].endswith(f":role/{project_plan.role_name}")
    assert project_plan.thing_name in iot.list_things_in_thing_group(thingGroupName=project_plan.thing_group)["things"]


def test_bundle_is_owner_only_and_readable_by_the_device(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    out = tmp_path / "deep" / "bundle"
    root_ca = tmp_path / "AmazonRootCA1.pem"
    root_ca.write_text("-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n")
    _apply(clients, project_plan, out, root_ca)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in (bundle.KEY_FILE, bundle.CERT_FILE, bundle.CONFIG_FILE, bundle.ROOT_CA_FILE):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    assert "PRIVATE KEY" in (out / bundle.KEY_FILE).read_text()
    assert "BEGIN CERTIFICATE" in (out / bundle.CERT_FILE).read_text()
    config = load_device_config(out / bundle.CONFIG_FILE)
    assert config.thing_name == project_plan.thing_name and config.mqtt_client_id == project_plan.thing_name
    assert config.mqtt_url.startswith("mqtts://") and "-ats.iot." in config.mqtt_url
    assert config.mqtt_tls == {
        "ca": out / bundle.ROOT_CA_FILE,
        "cert": out / bundle.CERT_FILE,
        "key": out / bundle.KEY_FILE,
    }
    extra = json.loads((out / bundle.CONFIG_FILE).read_text())["aws"]
    assert extra["bucket"] == project_plan.bucket and extra["role_alias"] == project_plan.role_alias
    assert ".credentials.iot." in extra["credentials_endpoint"]


def test_a_bundle_folder_open_to_others_is_refused(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    out = tmp_path / "open"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    with pytest.raises(Exception, match="open to other users"):
        _apply(clients, project_plan, out)


def test_rerun_without_the_key_reuses_the_certificate_and_says_the_key_is_missing(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    _apply(clients, project_plan, out)
    (out / bundle.KEY_FILE).unlink()
    notes = Provisioner(clients, project_plan, out, StepLog()).apply()
    assert any("private key is not in" in note and "never returns a private key" in note for note in notes)
    iot = clients.make("iot")
    assert len(iot.list_thing_principals(thingName=project_plan.thing_name)["principals"]) == 1


def test_destroy_leaves_nothing_of_the_project(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    _apply(clients, project_plan, out)
    s3 = clients.make("s3")
    for body in (b"v1", b"v2"):  # two versions and, below, a delete marker
        s3.put_object(Bucket=project_plan.bucket, Key="models/m/1/p.tar.gz", Body=body)
    s3.delete_object(Bucket=project_plan.bucket, Key="models/m/1/p.tar.gz")
    certificate = clients.make("iot").list_thing_principals(thingName=project_plan.thing_name)["principals"][0]

    log = StepLog()
    Destroyer(clients, project_plan, out, log).destroy()
    assert log.with_status("kept") == []
    assert _project_state(clients, project_plan) == EMPTY
    certificates = clients.make("iot").list_certificates()["certificates"]
    assert certificate not in [c["certificateArn"] for c in certificates]
    assert not out.exists()

    again = StepLog()
    Destroyer(clients, project_plan, out, again).destroy()
    assert again.with_status("deleted") == []


def test_destroying_one_device_keeps_the_project_for_the_others(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    from dataclasses import replace

    _apply(clients, project_plan, tmp_path / "one")
    other = replace(project_plan, thing_name=f"{project_plan.thing_name}-2")
    _apply(clients, other, tmp_path / "two")
    log = StepLog()
    Destroyer(clients, other, tmp_path / "two", log).destroy()
    assert {s.kind for s in log.with_status("kept")} >= {"bucket", "iot policy", "role alias", "thing group"}
    state = _project_state(clients, project_plan)
    assert state["things"] == [project_plan.thing_name] and state["buckets"] == [project_plan.bucket]
    Destroyer(clients, project_plan, tmp_path / "one", StepLog()).destroy()


def test_cli_dry_run_changes_nothing_and_cli_apply_reports_each_resource(
    moto_server: Any, project_plan: ProvisionPlan, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, clients: AwsClients,
) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.chdir(tmp_path)  # the signing key's default place is the working directory
    base = ["provision", "--project", project_plan.project, "--region", clients.region]
    base += ["--endpoint-url", moto_server.endpoint_url, "--out", str(tmp_path / "b")]
    assert main([*base, "--dry-run"]) == 0
    assert project_plan.bucket in capsys.readouterr().out
    assert _project_state(clients, project_plan) == EMPTY
    assert not (tmp_path / "b").exists()
    assert main(base) == 0
    out = capsys.readouterr().out
    assert f"created  bucket               {project_plan.bucket}" in out and "device bundle:" in out
    signing_key = f"edgesim-{project_plan.project}-signing.key"
    assert f"package signing key: {signing_key}" in out and (tmp_path / signing_key).is_file()
    assert main([*base, "--destroy"]) == 0
    assert f"deleted  bucket               {project_plan.bucket}" in capsys.readouterr().out


def test_after_a_cloudformation_stack_provision_adds_the_thing_to_its_group_and_writes_the_bundle(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    """The stack makes every resource but the group membership (no CloudFormation resource does) and no
    bundle; the device's own key, copied into --out, is all a rerun needs to finish the job."""
    out = tmp_path / "bundle"
    _apply(clients, project_plan, out)  # stands in for the stack: the same resources
    iot = clients.make("iot")
    iot.remove_thing_from_thing_group(thingGroupName=project_plan.thing_group, thingName=project_plan.thing_name)
    for name in (bundle.CONFIG_FILE, bundle.CERT_FILE, bundle.ROOT_CA_NOTE):
        (out / name).unlink()

    log = StepLog()
    notes = Provisioner(clients, project_plan, out, log).apply()
    assert [(s.kind, s.status) for s in log.with_status("created")] == [("thing in group", "created")]
    assert not any("private key" in note for note in notes)
    assert load_device_config(out / bundle.CONFIG_FILE).thing_name == project_plan.thing_name
    assert (out / bundle.CERT_FILE).is_file()


def test_the_project_signing_key_is_made_once_and_only_its_public_half_reaches_the_bundle(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path
) -> None:
    from system.signing import load_private_key, load_public_key, public_key_pem

    key_path, out = tmp_path / "operator" / "signing.key", tmp_path / "bundle"
    first = StepLog()
    Provisioner(clients, project_plan, out, first, signing_key=key_path).apply()
    assert ("signing key", "created") in [(s.kind, s.status) for s in first.steps]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    config = load_device_config(out / bundle.CONFIG_FILE)
    assert config.signing_public_key == out / bundle.SIGNING_PUBLIC_FILE
    pinned = load_public_key(config.signing_public_key).public_bytes_raw()
    private = load_private_key(key_path)
    assert pinned == private.public_key().public_bytes_raw()
    assert not [p for p in out.iterdir() if b"PRIVATE KEY" in p.read_bytes() and p.name != bundle.KEY_FILE]

    second_out = tmp_path / "bundle-2"  # another device of the project: the same key, reused
    again = StepLog()
    Provisioner(clients, project_plan, second_out, again, signing_key=key_path).apply()
    assert ("signing key", "exists") in [(s.kind, s.status) for s in again.steps]
    assert (second_out / bundle.SIGNING_PUBLIC_FILE).read_bytes() == public_key_pem(private)

    Destroyer(clients, project_plan, out, StepLog()).destroy()
    assert key_path.is_file()  # the operator's key signs for the other devices too: never destroyed


@pytest.mark.parametrize("where", ["inside the bundle", "open to others"])
def test_a_signing_key_that_would_leak_is_refused_before_aws_is_touched(
    clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path, where: str
) -> None:
    out = tmp_path / "bundle"
    if where == "inside the bundle":
        key_path, message = out / "signing.key", "inside the device bundle"
    else:
        key_path, message = tmp_path / "signing.key", "open to other users"
        key_path.write_text("not even a key")
        key_path.chmod(0o644)
    with pytest.raises(ConfigError, match=message):
        Provisioner(clients, project_plan, out, StepLog(), signing_key=key_path).apply()
    assert _project_state(clients, project_plan) == EMPTY
