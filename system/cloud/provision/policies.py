"""The policy documents of a provisioned project: least privilege, built as plain dicts.

The seed's IoT policy let every client connect under any id and use every `$aws/*` topic
(seed-behaviours.md, "stack"). Here a device may connect only with its own thing name as client
id, use only its own IoT Jobs topics (`$aws/things/<thing>/jobs/...`, the AWS IoT Jobs MQTT API)
and publish only its own telemetry (`edgesim/<thing>/telemetry/...`, system/edge/telemetry.py).
The thing name comes from the policy variable `${iot:Connection.Thing.ThingName}`, which AWS IoT
fills in from the thing attached to the connecting certificate, so one policy serves every device
of the project and no device can act as another.
"""

from __future__ import annotations

from typing import Any

from system.edge.telemetry import TOPIC_PREFIX

THING = "${iot:Connection.Thing.ThingName}"  # an AWS IoT policy variable, not a Python format field
MODELS_PREFIX = "models"  # where `edgesim pipeline` uploads packages (system/cloud/edge_package.py)
CAPTURE_PREFIX = "edge-agent-inference-data-capture"  # the agent's capture prefix (system/config.py)
CREDENTIALS_SERVICE = "credentials.iot.amazonaws.com"  # the principal of the IoT credentials provider


def device_policy(partition: str, region: str, account_id: str, role_alias: str) -> dict[str, Any]:
    """The IoT policy attached to every device certificate of the project."""
    arn = f"arn:{partition}:iot:{region}:{account_id}"
    jobs = f"$aws/things/{THING}/jobs/*"
    telemetry = f"{TOPIC_PREFIX}/{THING}/telemetry/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectAsOwnThingOnly",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{arn}:client/{THING}",
                # Without this a certificate not attached to any thing would match nothing useful,
                # but AWS recommends stating it: the variable is then always the caller's thing.
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
            },
            {
                "Sid": "OwnJobsTopicsAndTelemetry",
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"{arn}:topic/{jobs}", f"{arn}:topic/{telemetry}"],
            },
            {"Sid": "OwnJobsReplies", "Effect": "Allow", "Action": "iot:Receive", "Resource": f"{arn}:topic/{jobs}"},
            {
                "Sid": "OwnJobsSubscriptions",
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": f"{arn}:topicfilter/{jobs}",
            },
            {
                "Sid": "TemporaryS3Credentials",
                "Effect": "Allow",
                "Action": "iot:AssumeRoleWithCertificate",
                "Resource": f"{arn}:rolealias/{role_alias}",
            },
        ],
    }


def credentials_trust_policy() -> dict[str, Any]:
    """Who may assume the device role: only the AWS IoT credentials provider."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": CREDENTIALS_SERVICE}, "Action": "sts:AssumeRole"}],
    }


def device_s3_policy(partition: str, bucket: str) -> dict[str, Any]:
    """What the temporary credentials allow: read model packages, write data captures. Nothing else."""
    objects = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadModelPackages",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"{objects}/{MODELS_PREFIX}/*",
            },
            {
                "Sid": "WriteDataCapture",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{objects}/{CAPTURE_PREFIX}/*",
            },
        ],
    }
