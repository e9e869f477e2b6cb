"""Where the edge app's images come from: a folder of files (or, in tests and demos, a camera simulator).

The seed globbed `./static/**/*.png` without `recursive=True`, so it only saw PNGs exactly one folder
down, and it picked one at random per page load although its README spoke of cycling. Here a folder
is searched recursively, in sorted order, cycled or sampled at random (with a seed, reproducibly), and
rescanned as files come and go: a device's image folder is filled by another process while it runs.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from system.errors import EdgesimError
from system.logs import fields
from system.preprocessing import load_image

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
ORDERS = ("cycle", "random")


class ImageSourceError(EdgesimError):
    """The source has no image to give (missing folder, no image files, none decodable)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One image and the name it is shown under (a path relative to the folder, a camera frame id)."""

    name: str
    image: Image.Image


class ImageSource(Protocol):
    """Anything the inference loop can pull images from, one at a time."""

    def next_frame(self) -> Frame:
        """The next image; ImageSourceError when there is none to give."""
        ...


class FolderImageSource:
    """Image files under `root`, recursively, in sorted order of their relative path.

    `order="cycle"` walks the sorted list and starts over; `order="random"` draws with replacement
    from `random.Random(seed)`. The list is rescanned when a cycle wraps, every `rescan_every`
    frames, when a listed file has vanished, and while the list is empty, so files added or removed
    while the device runs are noticed without a restart. A cycle resumes after the last name it
    gave, so a rescan neither repeats nor skips the files that were already there.

    A file that cannot be decoded is logged once, counted in `skipped`, and left out until it
    changes (its size or modification time); a half-written file is thus retried once complete.
    KolektorSDD2 ground-truth masks (`*_GT.png`) are left out unless `include_masks`: they sit
    beside the images in the dataset's layout but are not camera images.

    Thread-safe, although the inference loop is normally its only reader.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        order: str = "cycle",
        seed: int | None = None,
        extensions: tuple[str, ...] = DEFAULT_EXTENSIONS,
        rescan_every: int = 50,
        include_masks: bool = False,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        if rescan_every < 1:
            raise ValueError("rescan_every must be at least 1")
        self.root = Path(root)
        self.order = order
        self._extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        self._rescan_every = rescan_every
        self._include_masks = include_masks
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._bad: dict[str, tuple[int, int]] = {}  # name -> (size, mtime_ns) of the undecodable version
        self._last: str | None = None  # the name the cycle gave last
        self._since_scan = 0
        self._scanned = False
        self.frames = 0  # images given
        self.skipped = 0  # undecodable file versions left out

    @property
    def names(self) -> list[str]:
        """The image names of the last scan, sorted."""
        with self._lock:
            return list(self._names)

    def rescan(self) -> list[str]:
        """Scan the folder now; returns the sorted names found."""
        with self._lock:
            self._scan()
            return list(self._names)

    def next_frame(self) -> Frame:
        with self._lock:
            if not self._scanned or not self._names or self._since_scan >= self._rescan_every:
                self._scan()
            # Each attempt either returns, or drops a name (vanished or undecodable) from the list,
            # so the loop ends once every listed file has been tried.
            while self._names:
                name = self._pick()
                frame = self._read(name)
                if frame is not None:
                    self._since_scan += 1
                    self.frames += 1
                    return frame
            raise ImageSourceError(self._why_empty())

    def _pick(self) -> str:
        if self.order == "random":
            return self._rng.choice(self._names)
        index = 0 if self._last is None else bisect.bisect_right(self._names, self._last)
        if index >= len(self._names):  # a full cycle: look for new and removed files before the next
            self._scan()
            if not self._names:
                raise ImageSourceError(self._why_empty())
            index = 0
        self._last = self._names[index]
        return self._last

    def _read(self, name: str) -> Frame | None:
        """The frame for `name`, or None (and the name leaves the list) if it vanished or is undecodable."""
        path = self.root / name
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._scan()  # one file gone suggests others changed too
            if name in self._names:  # still listed: a dangling link; leave it out until the next scan
                self._names.remove(name)
            return None
        try:
            image = load_image(path)
        except (OSError, ValueError) as exc:  # undecodable, unreadable, or gone since the stat
            self._bad[name] = (stat.st_size, stat.st_mtime_ns)
            self._names.remove(name)
            self.skipped += 1
            log.warning("skipping unreadable image", extra=fields(image=name, root=str(self.root), error=str(exc)))
            return None
        return Frame(name=name, image=image)

    def _scan(self) -> None:
        self._scanned = True
        self._since_scan = 0
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for filename in filenames:
                if not self._wanted(filename):
                    continue
                path = Path(dirpath) / filename
                name = path.relative_to(self.root).as_posix()
                if name in self._bad and not self._changed(path, self._bad[name]):
                    continue
                self._bad.pop(name, None)
                found.append(name)
        self._names = sorted(found)

    def _wanted(self, filename: str) -> bool:
        stem, ext = os.path.splitext(filename)
        if filename.startswith(".") or ext.lower() not in self._extensions:
            return False
        return self._include_masks or not stem.endswith("_GT")

    @staticmethod
    def _changed(path: Path, known: tuple[int, int]) -> bool:
        try:
            stat = path.stat()
        except OSError:
            return False
        return (stat.st_size, stat.st_mtime_ns) != known

    def _why_empty(self) -> str:
        if not self.root.is_dir():
            return f"image folder '{self.root}' does not exist"
        kinds = ", ".join(self._extensions)
        if self._bad:
            return f"no decodable image ({kinds}) under '{self.root}': {len(self._bad)} undecodable file(s) skipped"
        return f"no image files ({kinds}) under '{self.root}' (searched recursively)"
