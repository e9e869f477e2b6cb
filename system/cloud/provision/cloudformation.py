"""The CloudFormation template equivalent to `edgesim provision`, for users who manage AWS with stacks.

Built from the same policy functions as provisioning (system/cloud/provision/policies.py), with
CloudFormation's pseudo parameters in place of the account, region and partition, so the two cannot
drift apart; `edgesim provision --cloudformation` prints it, and the committed copy
(`docs/cloudformation/edgesim-device.template.json`) is checked against it and linted by cfn-lint in tests.

Two differences are CloudFormation's, not choices:
- the device certificate comes from a certificate signing request (`CertificateSigningRequest`):
  CloudFormation cannot return a private key, so the key is made where it stays, on the device;
- CloudFormation has no resource that puts a thing in a static thing group. Running
  `edgesim provision` afterwards with the same project (the key copied into the bundle folder first)
  finds every resource of the stack, adds the thing to its group and writes the device bundle.
"""

from __future__ import annotations

import json
from typing import Any

from system.cloud.provision.plan import CREDENTIAL_SECONDS, MODEL_TASKS, TAG_KEY
from system.cloud.provision.policies import THING, credentials_trust_policy, device_policy, device_s3_policy

TEMPLATE_PATH = "docs/cloudformation/edgesim-device.template.json"  # relative to the repository root
_ESCAPED_THING = THING.replace("${", "${!")  # Fn::Sub writes `${!x}` out as the literal `${x}`
_PSEUDO = {"partition": "${AWS::Partition}", "region": "${AWS::Region}", "account_id": "${AWS::AccountId}"}


def _sub(text: str) -> Any:
    """`text` as Fn::Sub when it has a `${...}` for CloudFormation to fill in, else as it is."""
    escaped = text.replace(THING, _ESCAPED_THING)
    return {"Fn::Sub": escaped} if "${" in escaped.replace(_ESCAPED_THING, "") else text


def _with_subs(value: Any) -> Any:
    """Every string of a policy document that names a parameter becomes an Fn::Sub."""
    if isinstance(value, dict):
        return {key: _with_subs(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_subs(item) for item in value]
    return _sub(value) if isinstance(value, str) else value


def _tags() -> list[dict[str, Any]]:
    return [{"Key": TAG_KEY, "Value": {"Ref": "Project"}}]


def _parameters() -> dict[str, Any]:
    return {
        "Project": {
            "Type": "String",
            "Description": "edgesim project name, as `edgesim provision --project`",
            "AllowedPattern": "^[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?$",
            "ConstraintDescription": "1-24 lowercase letters, digits or inner hyphens",
        },
        "ThingName": {
            "Type": "String",
            "Default": "",
            "Description": "the device's thing name; empty for edge-device-<Project>",
            "AllowedPattern": "^[A-Za-z0-9_-]{0,128}$",
        },
        "CertificateSigningRequest": {
            "Type": "String",
            "Description": "PEM CSR of the device key (e.g. openssl req -new -newkey ec ... -subj /CN=<thing>)",
        },
        "CredentialDurationSeconds": {
            "Type": "Number",
            "Default": CREDENTIAL_SECONDS,
            "MinValue": 900,
            "MaxValue": 43200,
            "Description": "lifetime of the temporary S3 keys the device gets from its certificate",
        },
    }


def _registry_resources() -> dict[str, Any]:
    thing = {"Fn::If": ["DefaultThingName", {"Fn::Sub": "edge-device-${Project}"}, {"Ref": "ThingName"}]}
    return {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            # A bucket that holds models and captures outlives the stack: delete it on purpose, not by accident.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketName": {"Fn::Sub": "edgesim-${Project}-${AWS::AccountId}-${AWS::Region}"},
                "VersioningConfiguration": {"Status": "Enabled"},
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
                "PublicAccessBlockConfiguration": dict.fromkeys(
                    ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
                ),
                "Tags": _tags(),
            },
        },
        "ThingGroup": {
            "Type": "AWS::IoT::ThingGroup",
            "Properties": {"ThingGroupName": {"Fn::Sub": "defect-detection-${Project}-group"}, "Tags": _tags()},
        },
        "Thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": thing,
                "AttributePayload": {"Attributes": {"edgesim_project": {"Ref": "Project"}}},
            },
        },
        **{
            f"ModelPackageGroup{index}": {
                "Type": "AWS::SageMaker::ModelPackageGroup",
                "Properties": {
                    "ModelPackageGroupName": {"Fn::Sub": f"defect-detection-{task}-${{Project}}"},
                    "ModelPackageGroupDescription": {"Fn::Sub": "edgesim project ${Project}"},
                    "Tags": _tags(),
                },
            }
            for index, task in enumerate(MODEL_TASKS, start=1)
        },
    }


def _identity_resources() -> dict[str, Any]:
    device = {"Fn::Sub": "edgesim-${Project}-device"}
    return {
        "DevicePolicy": {
            "Type": "AWS::IoT::Policy",
            "Properties": {
                "PolicyName": device,
                "PolicyDocument": _with_subs(device_policy(**_PSEUDO, role_alias="${RoleAlias}")),
                "Tags": _tags(),
            },
        },
        "DeviceRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": device,
                "Description": {"Fn::Sub": "edgesim ${Project}: devices' temporary S3 credentials"},
                "AssumeRolePolicyDocument": credentials_trust_policy(),
                "Policies": [
                    {
                        "PolicyName": "device-s3",
                        "PolicyDocument": _with_subs(device_s3_policy("${AWS::Partition}", "${Bucket}")),
                    }
                ],
                "Tags": _tags(),
            },
        },
        "RoleAlias": {
            "Type": "AWS::IoT::RoleAlias",
            "Properties": {
                "RoleAlias": device,
                "RoleArn": {"Fn::GetAtt": ["DeviceRole", "Arn"]},
                "CredentialDurationSeconds": {"Ref": "CredentialDurationSeconds"},
                "Tags": _tags(),
            },
        },
        "Certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateSigningRequest": {"Ref": "CertificateSigningRequest"}, "Status": "ACTIVE"},
        },
        "CertificatePolicy": {
            "Type": "AWS::IoT::PolicyPrincipalAttachment",
            "Properties": {"PolicyName": {"Ref": "DevicePolicy"}, "Principal": {"Fn::GetAtt": ["Certificate", "Arn"]}},
        },
        "CertificateThing": {
            "Type": "AWS::IoT::ThingPrincipalAttachment",
            "Properties": {"ThingName": {"Ref": "Thing"}, "Principal": {"Fn::GetAtt": ["Certificate", "Arn"]}},
        },
    }


def _outputs() -> dict[str, Any]:
    return {
        "Bucket": {"Value": {"Ref": "Bucket"}},
        "ThingName": {"Value": {"Ref": "Thing"}},
        "ThingGroup": {"Value": {"Ref": "ThingGroup"}},
        "CertificateId": {"Value": {"Ref": "Certificate"}},
        "RoleAlias": {"Value": {"Ref": "RoleAlias"}},
        "NextStep": {
            "Description": "adds the thing to its group and writes the device bundle (key copied into --out first)",
            "Value": {"Fn::Sub": "edgesim provision --project ${Project} --region ${AWS::Region} --thing ${Thing}"},
        },
    }


def template() -> dict[str, Any]:
    """The template as a dict (JSON-serialisable)."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": "edgesim: one project and one device (bucket, thing, thing group, certificate from a CSR, "
        "least-privilege IoT policy, IAM role and role alias, model package groups); equivalent to "
        "`edgesim provision`",
        "Parameters": _parameters(),
        "Conditions": {"DefaultThingName": {"Fn::Equals": [{"Ref": "ThingName"}, ""]}},
        "Resources": {**_registry_resources(), **_identity_resources()},
        "Outputs": _outputs(),
    }


def render() -> str:
    """The template as the text of the committed file."""
    return json.dumps(template(), indent=2) + "\n"
