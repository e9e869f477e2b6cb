"""Model versions, compared the way people read them: 1.10 > 1.9 > 1.2.3 > 1.

The seed compared versions with `float()`, so "1.10" counted as lower than "1.9" and "1.2.3" or
"v2" raised (seed-behaviours.md section 2). Here a version is one or more dot-separated
non-negative integers; parts compare as numbers, left to right, and missing trailing parts count
as 0 ("1" == "1.0"). Anything else cannot be parsed, and an OTA job carrying it is REJECTED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from system.errors import EdgesimError

_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,7}$")


class InvalidVersionError(EdgesimError):
    """The text is not a version edgesim can order."""


@total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    text: str
    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: object) -> Version:
        """A version from its text (an int is accepted too: the registry's version numbers)."""
        if isinstance(text, bool) or not isinstance(text, (str, int)):
            raise InvalidVersionError(f"model version {text!r} must be a string such as '3' or '1.10'")
        raw = str(text).strip()
        if not _VERSION.match(raw):
            raise InvalidVersionError(
                f"model version {raw!r} cannot be ordered: use dot-separated numbers such as '3', '1.10' or '2.0.1'"
            )
        parts = tuple(int(p) for p in raw.split("."))
        while len(parts) > 1 and parts[-1] == 0:
            parts = parts[:-1]
        return cls(raw, parts)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __lt__(self, other: Version) -> bool:
        return self.parts < other.parts

    def __str__(self) -> str:
        return self.text


def is_newer(candidate: object, current: object) -> bool:
    """Whether `candidate` is strictly newer than `current`; InvalidVersionError if either is not a version."""
    return Version.parse(candidate) > Version.parse(current)
