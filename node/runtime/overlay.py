"""The runtime's view of state: a key-value overlay over a read-only base.

The runtime never touches the database. It reads through `Overlay.get`, which looks at its own
pending writes first and then at the parent state (a plain function `base_get(key)`), and it
writes only into the overlay. At the end of a block the client turns `Overlay.changes()` into a
new trie version. Nested layers give each extrinsic its own transaction: a failed call is rolled
back, while the fee and nonce it paid stay.
"""

from __future__ import annotations

from collections.abc import Callable

StateGet = Callable[[bytes], bytes | None]

_DELETED = None


class Overlay:
    def __init__(self, base_get: StateGet) -> None:
        self._base_get = base_get
        self._committed: dict[bytes, bytes | None] = {}
        self._layers: list[dict[bytes, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        for layer in reversed(self._layers):
            if key in layer:
                return layer[key]
        if key in self._committed:
            return self._committed[key]
        return self._base_get(key)

    def set(self, key: bytes, value: bytes) -> None:
        (self._layers[-1] if self._layers else self._committed)[key] = value

    def delete(self, key: bytes) -> None:
        (self._layers[-1] if self._layers else self._committed)[key] = _DELETED

    # -- transactions ---------------------------------------------------------------------------

    def begin(self) -> None:
        self._layers.append({})

    def commit(self) -> None:
        top = self._layers.pop()
        (self._layers[-1] if self._layers else self._committed).update(top)

    def rollback(self) -> None:
        self._layers.pop()

    @property
    def depth(self) -> int:
        return len(self._layers)

    def changes(self) -> dict[bytes, bytes | None]:
        """Every key written in this block and its final value (None = deleted)."""
        if self._layers:
            raise RuntimeError("open storage transaction at end of block")
        return dict(self._committed)
