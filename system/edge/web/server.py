"""Serve the web UI with waitress on a background thread: start, learn the port, stop cleanly.

waitress rather than Flask's development server: it is a production WSGI server, pure Python, with
a fixed pool of worker threads, so a slow browser cannot starve the device. Port 0 picks a free port
(tests); `port` and `url` then say which one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ThreadedTaskDispatcher

from system.errors import ConfigError

logger = logging.getLogger(__name__)


class WebServer:
    """A waitress server for one WSGI app; `start()` binds and serves, `stop()` closes every socket.

    Limits: HTTP only (the UI listens on the loopback by default; put a TLS proxy in front to expose
    it); when `host` resolves to several addresses, `port` and `url` name the first.
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 8080, *, threads: int = 4, grace: float = 5.0
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._threads = threads
        self._grace = grace
        self._map: dict[int, Any] = {}  # waitress's socket map: the listening sockets and connections
        self._server: Any = None
        self._dispatcher: ThreadedTaskDispatcher | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self._bound: tuple[str, int] | None = None  # (host, port) actually listened on

    def start(self) -> WebServer:
        """Bind and serve on a daemon thread; ConfigError when the address cannot be used (port in use)."""
        with self._lock:
            if self._server is not None or self._stopped:
                raise RuntimeError("a WebServer starts once")
            dispatcher = ThreadedTaskDispatcher()
            try:
                # waitress starts no worker thread when given a dispatcher, so a failed bind leaves none behind.
                server = create_server(
                    self._app,
                    map=self._map,
                    _dispatcher=dispatcher,
                    host=self._host,
                    port=self._requested_port,
                    threads=self._threads,
                    ident="edgesim",
                )
            except (OSError, ValueError) as exc:
                wasyncore.close_all(self._map, ignore_all=True)  # the trigger pipe made before the bind
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise ConfigError(f"web UI cannot listen on {self._address(self._requested_port)}: {reason}") from exc
            dispatcher.set_thread_count(self._threads)
            self._server, self._dispatcher = server, dispatcher
            listener = self._listener()
            self._bound = (str(listener.effective_host), int(listener.effective_port))
            self._thread = threading.Thread(target=self._serve, name=f"web-ui:{self.port}", daemon=True)
            self._thread.start()
        logger.info("web UI listening on %s", self.url)
        return self

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:  # the UI is not worth the device: say why it went away
            logger.exception("web UI server loop failed")

    @property
    def port(self) -> int:
        """The port listened on (the real one when 0 was asked); still known after `stop()`."""
        return self._bound_address()[1]

    @property
    def host(self) -> str:
        return self._bound_address()[0]

    @property
    def url(self) -> str:
        """`http://host:port/` of the listening socket."""
        host = self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def _bound_address(self) -> tuple[str, int]:
        if self._bound is None:
            raise RuntimeError("the WebServer has not started")
        return self._bound

    def _listener(self) -> Any:
        listeners = [s for s in list(self._map.values()) if isinstance(s, BaseWSGIServer)]
        if not listeners:
            raise RuntimeError("the WebServer is not listening (not started, or stopped)")
        return listeners[0]

    def _address(self, port: int) -> str:
        return f"[{self._host}]:{port}" if ":" in self._host else f"{self._host}:{port}"

    def stop(self) -> None:
        """Close the listening sockets and connections, then let the workers finish; safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread, dispatcher = self._thread, self._dispatcher
        if thread is not None and thread.is_alive():
            # Close from the loop's own thread (a trigger thunk), never under its select(); the loop ends
            # when the map is empty.
            self._listener().trigger.pull_trigger(lambda: wasyncore.close_all(self._map, ignore_all=True))
            thread.join(self._grace)
            if thread.is_alive():
                logger.warning("web UI loop did not stop within %.1f s", self._grace)
        else:
            wasyncore.close_all(self._map, ignore_all=True)
        if dispatcher is not None:
            dispatcher.shutdown(timeout=self._grace)

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
