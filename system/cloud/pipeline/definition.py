"""A SageMaker Pipelines definition of the same pipeline, for users who train in AWS.

Generated with the SageMaker Python SDK (v2, `sagemaker.workflow`): Preprocess (Processing) ->
Train (Training) -> Evaluate (Processing, `evaluation.json` as a property file) -> Gate (a
condition on anomalous F1 or Dice, the same metric the local gate uses; never accuracy) ->
Register (model package group, approval status as a parameter) or Fail with the reason.

Building it uploads the entry scripts (`sagemaker_jobs/`) to the bucket, as the SDK always does,
so it needs an S3 endpoint: moto (the fake and local profiles: nothing leaves the machine) or AWS.
The jobs' image must have edgesim installed. Importing the SDK is slow and it phones home unless
told not to: telemetry is switched off through its user config before the first import.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

JOBS = Path(__file__).parent / "sagemaker_jobs"
DEFAULT_IMAGE = "763104351884.dkr.ecr.{region}.amazonaws.com/tensorflow-training:2.13-cpu-py310"
GATE_METRIC = {"classification": ("f1", "MinAnomalousF1", 0.5), "segmentation": ("dice", "MinDice", 0.3)}
_TELEMETRY_OFF = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"


@contextlib.contextmanager
def _sdk_environment(endpoint_url: str | None) -> Iterator[None]:
    """Telemetry off, v2 warning off, and (for moto) every boto3 client pointed at `endpoint_url`."""
    changes = {"SAGEMAKER_SUPPRESS_V2_WARNING": "1"}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config:
        config.write(_TELEMETRY_OFF)
    changes["SAGEMAKER_USER_CONFIG_OVERRIDE"] = config.name
    if endpoint_url:
        changes["AWS_ENDPOINT_URL"] = endpoint_url  # the SDK makes its own clients (code uploads)
    saved = {key: os.environ.get(key) for key in changes}
    os.environ.update(changes)
    sdk_log = logging.getLogger("sagemaker")
    level = sdk_log.level
    sdk_log.setLevel(logging.ERROR)  # it warns that names are "popped out" of every job definition
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No Wait, No Logs" is what a definition wants
            yield
    finally:
        sdk_log.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        Path(config.name).unlink(missing_ok=True)


def pipeline_definition(
    task: str,
    boto_session: Any,
    *,
    bucket: str,
    role_arn: str,
    group: str,
    endpoint_url: str | None = None,
    image_uri: str | None = None,
    instance_type: str = "ml.m5.xlarge",
) -> dict[str, Any]:
    """The pipeline definition JSON (as `Pipeline.definition()` returns it), parsed."""
    if task not in GATE_METRIC:
        raise ValueError(f"task must be classification or segmentation, not {task!r}")
    with _sdk_environment(endpoint_url):
        pipeline = _build(task, boto_session, bucket, role_arn, group, image_uri, instance_type)
        parsed: dict[str, Any] = json.loads(pipeline.definition())
    return parsed


def _build(task: str, boto_session: Any, bucket: str, role: str, group: str, image: str | None, instance: str) -> Any:
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep

    session = PipelineSession(boto_session=boto_session, default_bucket=bucket)
    image = image or DEFAULT_IMAGE.format(region=boto_session.region_name)
    metric, gate_name, gate_default = GATE_METRIC[task]
    data = ParameterString("InputData", default_value=f"s3://{bucket}/datasets/kolektorsdd2")
    epochs = ParameterInteger("Epochs", default_value=20)
    size = ParameterInteger("ImageSize", default_value=128)
    gate = ParameterFloat(gate_name, default_value=gate_default)
    approval = ParameterString("ApprovalStatus", default_value="PendingManualApproval")
    processor = ScriptProcessor(
        image_uri=image,
        command=["python3"],
        role=role,
        instance_type=instance,
        instance_count=1,
        sagemaker_session=session,
    )
    preprocess = ProcessingStep(
        "Preprocess",
        step_args=processor.run(
            code=str(JOBS / "preprocess.py"),
            inputs=[ProcessingInput(source=data, destination="/opt/ml/processing/input")],
            outputs=[ProcessingOutput(output_name="prepared", source="/opt/ml/processing/prepared")],
            arguments=["--task", task, "--image-size", Join(on="", values=[size])],
        ),
    )
    prepared = preprocess.properties.ProcessingOutputConfig.Outputs["prepared"].S3Output.S3Uri
    estimator = Estimator(
        image_uri=image,
        entry_point="train.py",
        source_dir=str(JOBS),
        role=role,
        instance_type=instance,
        instance_count=1,
        sagemaker_session=session,
        hyperparameters={"task": task, "epochs": epochs},
    )
    train = TrainingStep("Train", step_args=estimator.fit(inputs={"prepared": TrainingInput(prepared)}))
    model_data = train.properties.ModelArtifacts.S3ModelArtifacts
    report = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        "Evaluate",
        step_args=processor.run(
            code=str(JOBS / "evaluate.py"),
            inputs=[
                ProcessingInput(source=model_data, destination="/opt/ml/processing/model"),
                ProcessingInput(source=prepared, destination="/opt/ml/processing/prepared"),
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
            arguments=["--task", task],
        ),
        property_files=[report],
    )
    model = Model(image_uri=image, model_data=model_data, role=role, sagemaker_session=session)
    register = ModelStep(
        "Register",
        step_args=model.register(
            content_types=["application/x-image"],
            response_types=["application/json"],
            inference_instances=[instance],
            transform_instances=[instance],
            model_package_group_name=group,
            approval_status=approval,
        ),
    )
    fail = FailStep("GateFailed", error_message=Join(on=" ", values=[f"{metric} is below the gate of", gate]))
    condition = ConditionStep(
        "Gate",
        conditions=[
            ConditionGreaterThanOrEqualTo(
                # JsonGet is a valid left side at run time; the SDK's annotation omits it
                left=JsonGet(step_name=evaluate.name, property_file=report, json_path=metric),  # type: ignore[arg-type]
                right=gate,
            )
        ],
        if_steps=[register],
        else_steps=[fail],
    )
    return Pipeline(
        name=f"edgesim-{task}",
        parameters=[data, epochs, size, gate, approval],
        steps=[preprocess, train, evaluate, condition],
        sagemaker_session=session,
    )
