"""The imagechain runtime: its name, its version and its modules, in order.

The order is the order of genesis, of the start- and end-of-block hooks and of answers to a
notification. A new module is written as one file (`node.runtime.support` says what it
declares) and listed here; nothing else changes.

`spec_version` goes into every signature payload: bump it whenever the state transition changes
(and say why in `docs/protocol-notes.md`); `tests/test_golden_chain.py` notices when it should.
"""

from __future__ import annotations

from node.runtime import (
    aura,
    balances,
    copyright,
    emission,
    licensing,
    offences,
    pod,
    pow,
    storage,
    sudo,
    system,
    timestamp,
    vesting,
)
from node.runtime.executive import Runtime

SPEC_NAME = "imagechain"
SPEC_VERSION = 2

MODULES = (
    system.MODULE,
    timestamp.MODULE,
    aura.MODULE,
    balances.MODULE,
    vesting.MODULE,
    offences.MODULE,
    sudo.MODULE,
    emission.MODULE,
    pod.MODULE,
    copyright.MODULE,
    licensing.MODULE,
    storage.MODULE,
    pow.MODULE,
)

RUNTIME = Runtime(SPEC_NAME, SPEC_VERSION, MODULES)
