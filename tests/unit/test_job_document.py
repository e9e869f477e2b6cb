"""The OTA job document: the seed's fields still work; anything unusable gets a reason."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from system.edge.job_document import JobDocumentError, parse_job_document

SEED_DOCUMENT = {
    "type": "new_model",
    "model_version": "3",
    "model_name": "unet",
    "model_package_bucket": "sm-edge-workshop-demo-123456789012",
    "model_package_key": "models/defect-detection-semantic-segmentation/unet-3.tar.gz",
}


def test_the_seeds_document_parses_and_names_the_agent_model_like_the_seed() -> None:
    update = parse_job_document(SEED_DOCUMENT)
    assert (update.model_name, str(update.version), update.bucket) == (
        "unet",
        "3",
        SEED_DOCUMENT["model_package_bucket"],
    )
    assert update.identifier == "unet-3"
    assert parse_job_document({**SEED_DOCUMENT, "model_version": "1.2"}).identifier == "unet-1-2"


def test_optional_fields_and_unknown_fields() -> None:
    signature = base64.b64encode(bytes(64)).decode()
    update = parse_job_document(
        {**SEED_DOCUMENT, "sha256": "AB" * 32, "signature": signature, "size": 1024, "future": {"x": 1}}
    )
    assert update.sha256 == "ab" * 32 and update.signature == bytes(64) and update.size == 1024


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "firmware"}, "not supported"),
        ({"model_name": ""}, "model_name"),
        ({"model_name": "unet_v2"}, "model_name"),
        ({"model_version": "v2"}, "cannot be ordered"),
        ({"model_version": None}, "model version"),
        ({"model_package_bucket": "Not A Bucket"}, "bucket"),
        ({"model_package_key": 7}, "model_package_key"),
        ({"sha256": "abc"}, "sha256"),
        ({"signature": "not-base64!"}, "signature"),
        ({"signature": base64.b64encode(b"short").decode()}, "signature"),
        ({"size": -1}, "size"),
        ({"min_agent_version": "latest"}, "cannot be ordered"),
    ],
)
def test_unusable_documents_are_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(JobDocumentError, match=reason):
        parse_job_document({**SEED_DOCUMENT, **change})


@pytest.mark.parametrize("missing", ["model_name", "model_version", "model_package_bucket", "model_package_key"])
def test_a_missing_seed_field_is_refused(missing: str) -> None:
    document = {k: v for k, v in SEED_DOCUMENT.items() if k != missing}
    with pytest.raises(JobDocumentError):
        parse_job_document(document)


@pytest.mark.parametrize("document", [None, [], "new_model", 3])
def test_a_document_that_is_not_an_object_is_refused(document: object) -> None:
    with pytest.raises(JobDocumentError, match="not a JSON object"):
        parse_job_document(document)
