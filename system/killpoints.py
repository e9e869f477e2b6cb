"""Kill points: named step boundaries where a process can be made to SIGKILL itself, for crash testing.

A device must survive a power cut at any instant of an update. Sleeping and killing from outside
hits a random instant; these points hit an exact one. `EDGESIM_KILL_AT=<point>[#<n>][@group]` (read
by system/config.py, armed by the CLI) makes the process kill itself with SIGKILL the n-th time
(default the first) it passes `<point>`: no `finally`, no flush, no atexit, as if the power went out
there. With `@group` it kills its whole process group in the same instant (the kernel delivers one
SIGKILL to every member): a device's agent and app processes, put in one group, lose power together,
and neither gets to react to the other's death.
Before dying it writes one line, `edgesim: killed at <point>`, straight to stderr (fd 2), so a test
knows where the process died. Unarmed, a point costs one comparison.

`POINTS` is the catalogue of every point placed in the code, with what state it leaves behind; a
point not in it cannot be armed. `recording()` lists the points a block of code passes, without
killing anything, which is how the tests check that every point of the catalogue is really placed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from system.errors import ConfigError

_OTA_STEPS = ("download", "verify", "extract", "load", "health_check", "switch", "unload_old", "rollback", "report")

POINTS: dict[str, str] = {
    "ota.received": "a job taken with start-next and journaled, before its first step",
    **{
        point: text
        for step in _OTA_STEPS
        for point, text in (
            (f"ota.{step}.before", f"IN_PROGRESS reported for {step}, its work not started"),
            (f"ota.{step}.after", f"{step} done (or failed), the journal not yet updated"),
        )
    },
    "atomic.models_config.json.before-rename": "the new models_config.json written and synced beside the old one",
    "atomic.models_config.json.after-rename": "models_config.json replaced, its folder not yet synced",
    "atomic.journal.json.before-rename": "the new journal written and synced beside the old one",
    "atomic.journal.json.after-rename": "the journal replaced, its folder not yet synced",
    "agent.load.opened": "the agent opened and warmed up a model, not yet registered nor answered",
    "agent.load.registered": "the agent serves the new model, its LoadModel reply not yet sent",
    "agent.unload.done": "the agent freed a model, its UnLoadModel reply not yet sent",
    "capture.batch.before-write": "a batch of captures taken from the buffer, nothing written",
    "capture.batch.written": "a capture batch written to its store, its status not yet updated",
}


class _Armed:
    def __init__(self, point: str, nth: int, group: bool) -> None:
        self.point, self.nth, self.group, self.passes = point, nth, group, 0
        self.lock = threading.Lock()


_armed: _Armed | None = None
_recorders: list[list[str]] = []


def parse(spec: str) -> tuple[str, int, bool]:
    """`point[#n][@group]` -> (point, n, group); a ConfigError for an unknown point or a bad count."""
    spec_part, at, scope = spec.partition("@")
    if at and scope != "group":
        raise ConfigError(f"EDGESIM_KILL_AT: {spec!r}: the only scope after '@' is 'group'")
    point, _, count = spec_part.partition("#")
    if point not in POINTS:
        raise ConfigError(f"EDGESIM_KILL_AT: unknown kill point {point!r} (edgesim.killpoints.POINTS lists them)")
    try:
        nth = int(count) if count else 1
    except ValueError:
        raise ConfigError(f"EDGESIM_KILL_AT: {spec!r}: the count after '#' must be a whole number") from None
    if nth < 1:
        raise ConfigError(f"EDGESIM_KILL_AT: {spec!r}: the count after '#' must be at least 1")
    return point, nth, bool(at)


def arm(spec: str) -> None:
    """Kill this process at the point `spec` names (see the module docstring); "" disarms."""
    global _armed
    _armed = _Armed(*parse(spec)) if spec else None


def kill_point(point: str) -> None:
    """A step boundary named `point` (a key of POINTS): dies here when armed for it."""
    for recorder in _recorders:
        recorder.append(point)
    armed = _armed
    if armed is None or armed.point != point:
        return
    with armed.lock:
        armed.passes += 1
        if armed.passes < armed.nth:
            return
    os.write(2, f"edgesim: killed at {point}\n".encode())
    if armed.group:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def recording() -> Iterator[list[str]]:
    """The points passed while the block runs, in order (nothing is killed)."""
    passed: list[str] = []
    _recorders.append(passed)
    try:
        yield passed
    finally:
        _recorders.remove(passed)
