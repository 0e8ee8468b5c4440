"""Canonical JSON of a record and of the documents' slices of it, from texts already made.

``canonical_json`` (``json.dumps`` with sorted keys, no spaces, ``str`` for what JSON has no type
for) of a 40-position record is 10 MB, nearly all of it the results, and the certificates and
reports embed slices of it that hold the record's own result dicts: encoded one call at a time,
every result is encoded again for the record and again for its certificate, after its evidence
row was stored (as its text) when its point concluded. A ``CanonicalText`` is told the texts
already made (``remember``: a stored result's evidence) and uses them wherever those very objects
appear, encoding only the rest. Its text is ``canonical_json``'s, character for character
(tests/test_canonical_text.py); a remembered object must not change while it is in use.
"""
from __future__ import annotations

import json
from typing import Any


def canonical_json(data: Any) -> str:
    """One text per content: sorted keys, no spaces, dates and enums as strings."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


class CanonicalText:
    """``canonical_json`` of values whose parts have texts already."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[object, str]] = {}  # id -> (the object, held so no other takes its id; its text)

    def remember(self, value: dict[str, Any] | list[Any], text: str) -> None:
        """``text`` is ``canonical_json(value)``, made already (and ``value`` will not change)."""
        self._texts[id(value)] = (value, text)

    def text(self, value: Any) -> str:
        """``canonical_json(value)``; ValueError for a value that contains itself, as json says."""
        return self._encode(value, set())

    def _encode(self, value: Any, open_ids: set[int]) -> str:
        if not isinstance(value, (dict, list, tuple)):
            return canonical_json(value)
        key = id(value)
        known = self._texts.get(key)
        if known is not None:
            return known[1]
        if key in open_ids:
            raise ValueError("Circular reference detected")
        open_ids.add(key)
        if not isinstance(value, dict):
            text = "[" + ",".join(self._encode(item, open_ids) for item in value) + "]"
        elif all(type(name) is str for name in value):
            text = "{" + ",".join(f"{canonical_json(name)}:{self._encode(item, open_ids)}"
                                  for name, item in sorted(value.items())) + "}"
        else:  # keys json turns into text itself, after sorting them as they are
            text = canonical_json(value)
        open_ids.discard(key)
        return text
