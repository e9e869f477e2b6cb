"""MotoEnvironment: the fake AWS cloud of the `fake` and `local` profiles (DESIGN.md section 2).

`mode="inprocess"` patches botocore in this process (`moto.mock_aws`): clients reach moto
without any socket. `mode="server"` runs `moto.server.ThreadedMotoServer` on a loopback port
(0 = a free one) and clients speak real HTTP to `endpoint_url`; other processes (an edge app, the
AWS CLI) can use it too. Both modes keep their state in the same moto backends of this process.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
import urllib.error
import urllib.request
from types import TracebackType
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.configprovider import ConstantProvider
from botocore.exceptions import BotoCoreError, ClientError

from simulators.moto_seed import SeededProject, seed_project
from system.errors import EdgesimError

MODES = ("inprocess", "server")
# Any non-empty keys do: moto accepts them and maps them to its default account.
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"
# boto3 sessions are not thread-safe, but the clients they make are; one session per region is
# shared by every environment of the process because building one (its service models) costs
# ~0.2 s.
_SESSION_LOCK = threading.Lock()


class MotoEnvironmentError(EdgesimError):
    """The fake cloud could not be started, reached, reset or seeded."""


class MotoEnvironment:
    """A moto cloud, in-process or behind a local HTTP server, with the project's seed resources.

    Limits (moto 5.2.5, `../shared/reference/feasibility.md` section 4):
    - State is global to the process: every environment in one process shares moto's backends,
      and `reset()`, an in-process `start()` and an in-process `stop()` clear all of them,
      including those a server-mode environment is serving. Run one environment at a time, or
      give each test its own resource names.
    - One account (moto's default, whatever the credentials) and the region given here.
    - IoT Jobs has no state machine (jobs stay QUEUED), expands no thing-group target, and its
      `iot-jobs-data` API is not implemented: the jobs data plane simulator owns that, writing
      into `iot_backend()`. CancelJob / CancelJobExecution of an unknown job or execution fail
      with a KeyError (in process) or HTTP 500 (server).
    - IoT quirks seen here: CreateJob with an existing job id overwrites the job (AWS refuses
      it), every execution has executionNumber and versionNumber 123, DescribeEndpoint answers a
      different random host on every call, certificates are signed by moto's own CA ("Moto
      Server CA 1B"), not by an AWS CA.
    - SageMaker quirks: CreateModelPackageGroup of an existing name succeeds (AWS refuses it);
      UpdateModelPackage without CustomerMetadataProperties erases them (AWS keeps them).
      `SageMakerModelRegistry` copes with both.
    - No IAM enforcement: the seeded IoT policy is stored, never evaluated.
    - Server mode binds 127.0.0.1 only, serves plain HTTP, and stopping it takes up to 0.5 s
      (werkzeug's poll interval).
    - Clients make one attempt per call (no retries): a fake never throttles, and retrying its
      HTTP 500s would only slow the failure down.
    """

    def __init__(self, mode: str = "inprocess", region: str = "us-east-1", *, port: int = 0) -> None:
        if mode not in MODES:
            raise MotoEnvironmentError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.region = region
        self.port = port
        self.endpoint_url: str | None = None  # set by start() in server mode
        self._mock: Any = None
        self._server: Any = None
        self._account_id = ""

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._mock is not None or self._server is not None

    def start(self) -> MotoEnvironment:
        """Start moto (in-process patching, or the server thread); returns self."""
        if self.started:
            raise MotoEnvironmentError("this moto environment is already started")
        if self.mode == "inprocess":
            from moto import mock_aws

            self._mock = mock_aws()
            self._mock.start()  # clears every moto backend of the process
        else:
            from moto.server import ThreadedMotoServer

            if self.port:
                _require_free_port(self.port)
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            server.start()
            self._server = server
            host, port = server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop moto. In-process mode also clears all state; server mode leaves it to `reset()`."""
        if self._mock is not None:
            mock, self._mock = self._mock, None
            mock.stop()
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            self.endpoint_url = None
        self._account_id = ""

    def __enter__(self) -> MotoEnvironment:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget every resource (all services, all accounts and regions of moto)."""
        self._require_started()
        if self._mock is not None:
            self._mock.reset()
            return
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise MotoEnvironmentError(f"cannot reset the moto server at {self.endpoint_url}: {exc}") from exc

    # -- clients ---------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client of `service` bound to this environment, with fake credentials."""
        self._require_started()
        config = Config(retries={"total_max_attempts": 1, "mode": "standard"})
        with _SESSION_LOCK:
            return _shared_session(self.region).client(service, endpoint_url=self.endpoint_url, config=config)

    @property
    def account_id(self) -> str:
        """The account moto files every resource under (asked of STS once per start)."""
        if not self._account_id:
            try:
                self._account_id = str(self.client("sts").get_caller_identity()["Account"])
            except (ClientError, BotoCoreError) as exc:
                raise MotoEnvironmentError(f"cannot ask moto for its account: {exc}") from exc
        return self._account_id

    def iot_backend(self) -> Any:
        """moto's IoT backend object of this account and region (`moto.iot.models.FakeIoTBackend`).

        Its `jobs` and `job_executions[(job_id, thing_name)]` are what DescribeJob and
        DescribeJobExecution read, in both modes (the server runs in this process).
        """
        self._require_started()
        from moto.iot.models import iot_backends

        return iot_backends[self.account_id][self.region]

    # -- seed ------------------------------------------------------------------------------

    def seed_project(self, project: str) -> SeededProject:
        """Create, or find, the seed's resources of `project` (see `simulators.moto_seed`)."""
        return seed_project(self.client, project, region=self.region, account_id=self.account_id)

    def _require_started(self) -> None:
        if not self.started:
            raise MotoEnvironmentError("start the moto environment first")


def _require_free_port(port: int) -> None:
    """ThreadedMotoServer.start() waits forever when its thread cannot bind: fail first instead."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise MotoEnvironmentError(f"cannot serve moto on 127.0.0.1:{port}: {exc}") from exc


@functools.cache
def _shared_session(region: str) -> boto3.session.Session:
    return offline_session(region)


def offline_session(region: str) -> boto3.session.Session:
    """A boto3 session with fake credentials that reads no ~/.aws file, AWS_PROFILE or AWS_ENDPOINT_URL."""
    core = botocore.session.Session()
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    core.set_config_variable("ignore_configured_endpoint_urls", True)
    core.get_component("config_store").set_config_provider("profile", ConstantProvider(None))
    return boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        region_name=region,
    )
