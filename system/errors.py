"""The product's exceptions: one root, one subclass per failure a caller can act on.

Adapters translate library errors (grpc.RpcError, botocore ClientError...) into these at the
boundary, so callers never see a transport's exception type and never get None for a failure.
"""

from __future__ import annotations


class EdgesimError(Exception):
    """Root of every error edgesim raises on purpose."""


class ConfigError(EdgesimError):
    """A setting is missing or has a value edgesim cannot use."""


class AgentError(EdgesimError):
    """An Edge Agent operation failed; `code` is the gRPC status code name (e.g. "NOT_FOUND")."""

    code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgumentError(AgentError):
    code = "INVALID_ARGUMENT"


class ModelNotFoundError(AgentError):
    code = "NOT_FOUND"


class ModelAlreadyLoadedError(AgentError):
    code = "ALREADY_EXISTS"


class PackageNotFoundError(AgentError):
    """Nothing at the URL given to LoadModel."""

    code = "NOT_FOUND"


class PackageRejectedError(AgentError):
    """The model package is corrupt, tampered with, or needs a runtime that is not available."""

    code = "FAILED_PRECONDITION"


class ResourceExhaustedError(AgentError):
    """A model-count or memory budget, or the capture buffer, is full."""

    code = "RESOURCE_EXHAUSTED"


class CaptureAlreadyExistsError(AgentError):
    code = "ALREADY_EXISTS"


class CaptureNotFoundError(AgentError):
    code = "NOT_FOUND"


class OutOfRangeError(AgentError):
    code = "OUT_OF_RANGE"


class AgentUnavailableError(AgentError):
    """The agent cannot be reached (not running, wrong socket, deadline exceeded)."""

    code = "UNAVAILABLE"


class AgentInternalError(AgentError):
    code = "INTERNAL"


class RuntimeFailureError(AgentError):
    """A model runtime failed while running a request it had accepted."""

    code = "INTERNAL"


class ObjectStoreError(EdgesimError):
    """An object store operation failed."""


class ObjectNotFoundError(ObjectStoreError):
    """No object under that key."""


class ObjectTooLargeError(ObjectStoreError):
    """The object is bigger than the caller allows."""


class MessageBusError(EdgesimError):
    """Connecting, publishing or subscribing failed (timeout, refused, not authorized)."""


class NotAuthorizedError(MessageBusError):
    """The broker refused the action for this client identity (an IoT-policy-like denial)."""


class JobsError(EdgesimError):
    """An IoT Jobs control-plane call failed; `code` is the AWS error code when there is one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RegistryError(EdgesimError):
    """A model registry call failed."""
