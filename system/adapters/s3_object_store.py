"""S3ObjectStore: the ObjectStore and FileTransfer ports on one S3 bucket, through boto3.

The composition root builds the boto3 S3 client (real AWS, or a moto server through
`endpoint_url`); this adapter only speaks the S3 API, so it works the same against both.
Downloads stream to disk in chunks and resume with a ranged GetObject (`Range: bytes=N-`,
pinned to the object's ETag with `IfMatch` so a resumed file never mixes two versions);
uploads go through boto3's transfer manager, multipart above `multipart_threshold`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from system.adapters.resumable_download import download_resumable
from system.errors import ObjectNotFoundError, ObjectStoreError

MIB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 8 * MIB
MIN_PART_SIZE = 5 * MIB  # S3 refuses smaller parts (except the last one)
DEFAULT_CHUNK_SIZE = 1 * MIB
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ObjectStore:
    """Objects under keys of one bucket.

    `multipart_threshold`: files at least this big are uploaded in parts of at least that size
    (never under S3's 5 MiB part minimum). `chunk_size`: bytes read from a response body at a time
    while downloading. `page_size`: keys per ListObjectsV2 page (S3 caps it at 1000).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        page_size: int = 1000,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.chunk_size = chunk_size
        self.page_size = page_size
        # "classic": boto3 would otherwise pick the CRT transfer client on some machines, and the
        # two do not behave alike (threads, part sizes, errors).
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=max(multipart_threshold, MIN_PART_SIZE),
            preferred_transfer_client="classic",
        )

    def _fail(self, operation: str, key: str, exc: Exception) -> NoReturn:
        where = f"s3://{self.bucket}/{key}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"S3 {operation} {where} failed: {code} {error.get('Message', '')}".rstrip()
            if code in _NOT_FOUND_CODES:
                raise ObjectNotFoundError(message) from exc
            raise ObjectStoreError(message) from exc
        raise ObjectStoreError(f"S3 {operation} {where} failed: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            self._fail("PutObject", key, exc)

    def get_bytes(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())
        except (ClientError, BotoCoreError) as exc:
            self._fail("GetObject", key, exc)

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            self._fail("ListObjectsV2", prefix, exc)
        return sorted(keys)

    def _head(self, key: str) -> tuple[int, str]:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            self._fail("HeadObject", key, exc)
        return int(head["ContentLength"]), str(head.get("ETag", ""))

    def size(self, key: str) -> int:
        return self._head(key)[0]

    def download_file(self, key: str, dest: Path, *, max_bytes: int | None = None) -> int:
        size, etag = self._head(key)

        def fetch(offset: int) -> tuple[int, Iterable[bytes]]:
            request: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if etag:
                request["IfMatch"] = etag  # the object must not change between HEAD and GET
            if offset:
                request["Range"] = f"bytes={offset}-"
            try:
                response = self.client.get_object(**request)
            except (ClientError, BotoCoreError) as exc:
                self._fail("GetObject", key, exc)
            # A 200 without Content-Range means the server sent the whole object: start over.
            start = offset if offset and response.get("ContentRange") else 0
            return start, self._chunks(key, response["Body"])

        return download_resumable(dest, size, fetch, max_bytes=max_bytes, what=f"s3://{self.bucket}/{key}")

    def _chunks(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(self.chunk_size)
        except (ClientError, BotoCoreError) as exc:
            self._fail("GetObject (reading the body)", key, exc)
        finally:
            body.close()

    def upload_file(self, path: Path, key: str) -> None:
        try:
            self.client.upload_file(str(path), self.bucket, key, Config=self.transfer_config)
        except (ClientError, BotoCoreError, S3UploadFailedError, OSError) as exc:
            self._fail("upload", key, exc)
