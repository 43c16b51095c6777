"""storage_*: the image store, as this node sees it (PROTOCOL section 13, issue #12 item 5).

`storage_blob` joins what the chain says about a blob (`node.runtime.storage`: its kind, size,
registration, the miners assigned to keep it) with what this node holds and what the network
answers now (providers from the DHT, each asked whether it holds and keeps the blob). It waits
for the network outside the server's call slot (`off_loop`); the lookups are bounded by the
blob service (a few at once, answers cached for seconds). `storage_stats` is the node's store
and the work its service has done since start.
"""

from __future__ import annotations

from node.keys import encode_address
from node.rpc.encoding import to_hex
from node.rpc.jsonrpc import JSON, CallContext, MethodTable
from node.rpc.params import Hash
from node.runtime import copyright, storage
from node.state.trie import MissingNode

METHODS = MethodTable()

KIND_NAMES = {copyright.BLOB_PUBLISHED: "published", copyright.BLOB_SEALED_ORIGINAL: "sealedOriginal"}


@METHODS.method(
    "storage_blob",
    result={
        "type": "object",
        "description": "root, recorded, kind, kindName, size, registration, since, held, segments {held, total}, "
        "keeps, providers [{peerId, live, keeps}], liveStorers, assignedStorers [addresses], replication",
    },
    off_loop=True,
)
async def storage_blob(ctx: CallContext, root: Hash) -> JSON:
    """A blob of the image store: its record on chain (best block), whether this node holds and
    keeps it, its providers in the DHT (each probed: live, keeps), and its assigned storers."""
    blobs = getattr(ctx.node, "blobs", None)
    try:
        state = ctx.node.chain.best_state()
        record = storage.get_blob(state, root)
        assigned = storage.assigned_storers(state, root)
        replication = storage.read_params(state).replication
    except MissingNode:  # the best state moved and was pruned under us: a rare race, ask again
        record, assigned, replication = None, [], storage.StorageParams().replication
    info = blobs.store.info(root) if blobs is not None else None
    missing = len(blobs.store.missing_segments(root)) if blobs is not None and info is not None else 0
    providers = await blobs.providers(root) if blobs is not None else []
    keeps = blobs is not None and blobs.keeps(root)
    return {
        "root": to_hex(root),
        "recorded": record is not None,
        "kind": None if record is None else record.kind,
        "kindName": None if record is None else KIND_NAMES.get(record.kind),
        "size": record.size if record is not None else (info.size if info is not None else None),
        "registration": None if record is None else record.registration_id,
        "since": None if record is None else record.since,
        "held": info is not None and info.complete,
        "segments": None if info is None else {"held": info.segment_count - missing, "total": info.segment_count},
        "keeps": keeps,
        "providers": [{"peerId": p.peer_id, "live": p.live, "keeps": p.keeps} for p in providers],
        "liveStorers": sum(1 for p in providers if p.live and p.keeps) + (1 if keeps else 0),
        "assignedStorers": [encode_address(account) for account in assigned],
        "replication": replication,
    }


@METHODS.method(
    "storage_stats",
    result={
        "type": "object",
        "description": "storedBytes, quotaBytes, blobs, fetching, storer, duties {assigned, standby}, and the "
        "counters since start: uploads, fetches, fetched, fetchFailures, bytesFetched, segmentsServed, "
        "bytesServed, forgedAnswers, provided, reprovided, repairs, repairRounds, gcDeleted, gcFreedBytes",
    },
)
async def storage_stats(ctx: CallContext) -> JSON:
    """This node's blob store (bytes, quota, blobs) and what its service did since start."""
    blobs = getattr(ctx.node, "blobs", None)
    if blobs is None:
        return None
    storer = blobs.config.storer
    return {
        **blobs.status(),
        "storer": None if storer is None else encode_address(storer),
        "duties": blobs.duties(),
    }
