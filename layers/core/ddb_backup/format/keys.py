"""An item's key under a table's key schema: comparable, and every key of a stream seen once.

Two items with one key under the target's key schema are one item in the
table: the second overwrites the first. A backup of a table never holds two
(its own key is unique), so two mean the target's key is not the source's
(``--keys pk`` for a table keyed ``(pk, sk)``, an existing table keyed
otherwise), and a restore that went on would lose items while counting them
as restored. :class:`KeysSeen` finds them as the items stream past.

Memory: a 16-byte digest per key, about 100 bytes an item in Python (10
million items: about 1 GB).
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal, InvalidOperation
from typing import Any

from ddb_backup.errors import BadInput
from ddb_backup.format.ddbjson import Item, item_to_wire

#: Keys of items met again that a :class:`KeysSeen` keeps to name.
EXAMPLES = 3


def key_value(av: dict[str, Any]) -> Any:
    """One key attribute value as a comparable pair: (type, value), a number normalised (``1.0`` is ``1``)."""
    ((kind, value),) = av.items()
    if kind == "N":
        try:
            return kind, str(Decimal(value).normalize())
        except InvalidOperation:
            return kind, value
    return kind, value


class KeyOf:
    """An item's key (the table's key attributes, each as :func:`key_value`), or ``BadInput`` naming what lacks."""

    def __init__(self, table: str, key_names: list[str]) -> None:
        self.table = table
        self.key_names = key_names

    def __call__(self, item: Item) -> tuple[Any, ...]:
        try:
            return tuple(key_value(item[name]) for name in self.key_names)
        except (KeyError, ValueError, AttributeError):
            missing = [n for n in self.key_names if n not in item]
            raise BadInput(
                f"table {self.table}: an item lacks key attribute(s) {missing}: {sorted(item)[:10]}"
            ) from None


class KeysSeen:
    """Every key of a stream (as a digest), the number met again and the first few of those (as JSON text)."""

    def __init__(self, key_names: list[str]) -> None:
        self.key_names = key_names
        self.digests: set[bytes] = set()
        self.again = 0
        self.examples: list[str] = []

    def add(self, key: tuple[Any, ...], item: Item) -> bool:
        """Note ``key`` (``item``'s); False when an earlier item had it (counted, and named while few)."""
        digest = hashlib.blake2b(repr(key).encode(), digest_size=16).digest()
        if digest not in self.digests:
            self.digests.add(digest)
            return True
        self.again += 1
        shown = json.dumps(item_to_wire({n: item[n] for n in self.key_names}), sort_keys=True)
        if len(self.examples) < EXAMPLES and shown not in self.examples:
            self.examples.append(shown)
        return False
