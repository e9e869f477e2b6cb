"""Freeze a framework's objects out of the garbage collector once it is imported.

Why: importing TensorFlow creates about 300,000 objects the cyclic garbage collector tracks,
and they live as long as the process. Every full collection traverses all of them: 70-240 ms
with the GIL held on the reference machine, during which every Predict waits; such a collection
comes every few seconds to minutes under traffic, and an unloaded model's cycles are freed only
by one (BENCHMARKS.md, "Swap under load"). `gc.freeze()` moves every object that exists at that
moment into a permanent generation that collections skip; a full collection then costs a few ms.

When: once per framework and process, after its runtime module is imported and before a model of
it is opened, so that models' own objects stay collectable (an unloaded model's reference cycles
must still be freed). Limits: whatever is alive at that moment is frozen with the framework, so
models of another framework loaded earlier never have their cycles collected (a bounded leak,
once per framework); no collection runs before freezing (it would stall Predicts for as long as
the collection it avoids), so the import's own cyclic garbage stays too (a few hundred objects).
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from system.logs import fields

log = logging.getLogger(__name__)

_frozen: set[str] = set()
_lock = threading.Lock()


def freeze_framework(framework: str) -> bool:
    """Freeze the process's objects the first time `framework` is opened here; True if it froze now."""
    with _lock:
        if framework in _frozen:
            return False
        _frozen.add(framework)
        started = time.perf_counter()
        gc.freeze()
    log.info(
        "framework objects frozen out of garbage collection",
        extra=fields(framework=framework, freeze_ms=round((time.perf_counter() - started) * 1000, 1)),
    )
    return True
