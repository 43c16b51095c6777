"""The runtime's shape: it imports only primitives, and a module is one file plus one line.

1. Every import in `node/runtime/` (top-level or inside a function) is of the standard library,
   the runtime itself, or the few primitives the state transition is allowed to use.
2. A toy module, declared here and listed in a temporary runtime, gets its genesis, storage,
   calls, events, errors, hooks and notifications working without any other file changing.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from node.runtime import balances, system
from node.runtime.executive import Runtime
from node.runtime.runtime import MODULES, RUNTIME, SPEC_VERSION
from node.runtime.support import (
    BYTES,
    U32,
    U64,
    AccountId,
    BlockContext,
    DispatchError,
    GenesisState,
    Notification,
    Origin,
    RuntimeModule,
    StorageMap,
    StorageValue,
    arg_u32,
    call,
    ensure,
    ensure_signed,
    error,
    event,
)
from node.types import Call, Header, aura_pre_digest
from tests.chainutil import IMG, signed

RUNTIME_DIR = Path(__file__).resolve().parents[2] / "node" / "runtime"
ALLOWED = (
    "node.runtime", "node.codec", "node.types", "node.keys", "node.units", "node.state", "node.primitives",
    "node.imaging.verify", "numpy",
)  # fmt: skip


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            names.append(node.module or "")
    return names


def _allowed(name: str) -> bool:
    if name.split(".")[0] in sys.stdlib_module_names:
        return True
    return any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)


def test_the_runtime_imports_only_primitives() -> None:
    files = sorted(RUNTIME_DIR.glob("*.py"))
    assert len(files) >= 14
    offending = {f"{path.name}: {name}" for path in files for name in _imports(path) if not _allowed(name)}
    assert not offending, f"the runtime imports client code: {sorted(offending)}"


def test_the_import_check_catches_a_client_import(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from node.imaging.watermark import embed\n    import scipy\n")
    assert [name for name in _imports(sneaky) if not _allowed(name)] == ["node.imaging.watermark", "scipy"]


# ---------------------------------------------------------------------------------------------
# A toy module: a counter per account, a genesis value, an end-of-block hook, a notification
# ---------------------------------------------------------------------------------------------

NAME = "toy"
STARTED = Notification("toy.started")

TOTAL: StorageValue[int] = StorageValue(b"toy:total", U64, 0)
COUNTS: StorageMap[int] = StorageMap(b"toy:count:", (BYTES,), U32, 0)
LAST_BLOCK: StorageValue[int] = StorageValue(b"toy:last_block", U32)


@event(NAME)
class Counted:
    who: AccountId
    by: int
    total: int


@event(NAME)
class Heard:
    """The toy answered its own notification."""

    amount: int


@error(NAME)
class TooMuch(DispatchError):
    """A step above the limit."""

    limit: int


def build_genesis(genesis: GenesisState) -> None:
    TOTAL.put(genesis, int(genesis.section("toy").get("start", 0)))


def on_finalize(ctx: BlockContext) -> None:
    LAST_BLOCK.put(ctx, ctx.number)


def on_started(ctx: BlockContext, amount: int) -> None:
    ctx.deposit_event(Heard(amount))


@call(NAME, "count", arg_u32, weight=1_000)
def count(ctx: BlockContext, origin: Origin, by: int) -> None:
    who = ensure_signed(origin)
    ensure(by <= 10, TooMuch, 10)
    COUNTS.put(ctx, who, (COUNTS.get(ctx, who) or 0) + by)
    total = (TOTAL.get(ctx) or 0) + by
    TOTAL.put(ctx, total)
    ctx.deposit_event(Counted(who, by, total))
    ctx.notify(STARTED, by)


TOY = RuntimeModule(
    NAME,
    calls=(count,),
    events=(Counted, Heard),
    errors=(TooMuch,),
    storage=(TOTAL, COUNTS, LAST_BLOCK),
    genesis=build_genesis,
    on_finalize=on_finalize,
    answers={STARTED: on_started},
)


def test_a_toy_module_works_from_its_declaration_alone(dev_spec, alice, bob) -> None:
    runtime = Runtime("toychain", SPEC_VERSION, (*MODULES, TOY))
    state = dict(runtime.genesis_storage({**dev_spec.raw, "toy": {"start": 5}}))
    assert TOTAL.get(state) == 5 and LAST_BLOCK.get(state) is None
    assert "toy.count" in runtime.calls and "toy.count" not in RUNTIME.calls  # the real runtime is untouched

    genesis = b"\x22" * 32
    slot = dev_spec.genesis_time_ms // dev_spec.params.slot_ms + 1
    ctx = runtime.initialize_block(state.get, Header(genesis, 1, b"", b"", (aura_pre_digest(slot),)))
    runtime.apply_extrinsic(ctx, genesis, _inherent(slot, dev_spec.params.slot_ms))
    assert runtime.apply_extrinsic(ctx, genesis, signed(bob, Call("toy", "count", (3,)), genesis, 0))
    assert not runtime.apply_extrinsic(ctx, genesis, signed(bob, Call("toy", "count", (11,)), genesis, 1))
    for key, value in runtime.finalize_block(ctx).items():
        state[key] = value  # type: ignore[assignment]

    assert TOTAL.get(state) == 8 and COUNTS.get(state, bob.account_id) == 3 and LAST_BLOCK.get(state) == 1
    decoded = runtime.decode_events(state[system.KEY_EVENTS])
    toy_events = [d.event for d in decoded if d.module == "toy"]
    assert toy_events == [Counted(bob.account_id, 3, 8), Heard(3)]
    failed = next(d for d in decoded if isinstance(d.event, system.ExtrinsicFailed))
    assert (failed.phase, failed.error, failed.error_detail) == (2, TooMuch, (10,))
    # The toy's block paid fees like any other: balances knows nothing of the toy.
    assert any(isinstance(d.event, balances.FeesPaid) for d in decoded)
    assert system.read_account(state.get, bob.account_id).free < 4_200_000_000 * IMG


def _inherent(slot: int, slot_ms: int) -> bytes:
    from node.runtime.executive import timestamp_inherent

    return timestamp_inherent(slot * slot_ms)


def test_a_runtime_refuses_a_misdeclared_module() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Runtime("twice", 1, (*MODULES, MODULES[0]))
    stray = RuntimeModule("other", calls=(count,))
    with pytest.raises(ValueError, match="toy.count listed by module other"):
        Runtime("stray", 1, (*MODULES, stray))


def test_every_event_and_error_of_the_runtime_round_trips_its_declaration() -> None:
    """Each declared field type encodes and decodes back (ints as u128 on the wire)."""
    from node.runtime.support import EventRecord

    samples = {int: 7, AccountId: b"\x01" * 32, bytes: b"\x02\x03", str: "text"}
    from node.runtime.support import Balance

    samples[Balance] = 12 * IMG
    for declared in RUNTIME.events.values():
        if declared is system.ExtrinsicFailed:
            continue
        values = [samples[f.type] for f in declared.FIELDS]
        record = EventRecord.of(0, declared(*values))
        again = RUNTIME.decode_event(EventRecord.from_wire(record.to_wire()))
        assert again.event == declared(*values), declared
    for failure in RUNTIME.errors.values():
        detail = tuple(samples[f.type] for f in failure.FIELDS)
        record = EventRecord.of(1, system.ExtrinsicFailed(failure.qualified_name(), detail))
        again = RUNTIME.decode_event(EventRecord.from_wire(record.to_wire()))
        assert (again.error, again.error_detail) == (failure, detail), failure


def test_the_validators_imaging_path_loads_no_embedder() -> None:
    """`node.imaging.verify` is all the runtime imports of imaging: no float embedder, no sync
    search, no scipy.sparse/ndimage (numba itself imports the scipy package, nothing more)."""
    import subprocess

    code = (
        "import sys, node.runtime.runtime, node.imaging.verify\n"
        "print(sorted(m for m in ('node.imaging.watermark', 'node.imaging.sync', 'node.imaging.template',"
        " 'scipy.sparse', 'scipy.ndimage') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
