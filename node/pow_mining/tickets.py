"""The miner's side of storage-proof mining: seal assigned blobs, then walk them for tickets.

`seal_blob` turns a blob into this account's replica (every 1 KiB chunk sealed with
`node.primitives.seal`, the sealed chunks under their own Merkle root, which the miner commits
on chain with `storage.commit_replica`). `try_ticket` runs the walk of `node.runtime.pow` for one
(block hash, nonce): `steps` reads of the replica, each signed with the miner's BLS key, and
returns the ticket if its score is below the target. The runtime's `check_ticket` is the other
half: a ticket built here passes it, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.primitives import merkle, seal
from node.primitives.bls import BlsKey
from node.runtime import pow

__all__ = ["Replica", "seal_blob", "try_ticket"]


@dataclass
class Replica:
    """One account's sealed copy of one blob, with what ticket paths need."""

    blob_root: bytes
    size: int
    sealed_chunks: list[bytes]
    sealed_hashes: list[bytes]  # leaf hashes of the sealed chunks: the replica tree
    chunk_hashes: list[bytes]  # leaf hashes of the blob's own chunks: the blob tree

    @property
    def replica_root(self) -> bytes:
        return merkle.root_of(self.sealed_hashes)

    def step(self, chunk_index: int) -> tuple[bytes, list[bytes], list[bytes]]:
        """(sealed chunk, its path in the replica tree, the chunk's path in the blob tree)."""
        return (
            self.sealed_chunks[chunk_index],
            merkle.audit_path(self.sealed_hashes, chunk_index),
            merkle.audit_path(self.chunk_hashes, chunk_index),
        )


def seal_blob(
    data: bytes, account: bytes, rounds: int, progress: Callable[[int, int], None] | None = None
) -> Replica:
    """Seal every chunk of `data` for `account` (slow on purpose: `rounds` square roots per word)."""
    root = merkle.blob_root(data)
    count = merkle.leaf_count(len(data))
    sealed: list[bytes] = []
    for index in range(count):
        chunk = data[index * merkle.LEAF_BYTES : (index + 1) * merkle.LEAF_BYTES]
        sealed.append(seal.seal_chunk(chunk, seal.chunk_key(account, root, index), rounds))
        if progress is not None:
            progress(index + 1, count)
    return Replica(root, len(data), sealed, [merkle.leaf_hash(c) for c in sealed], merkle.leaf_hashes(data))


def try_ticket(
    *,
    key: BlsKey,
    account: bytes,
    replicas_in_chain_order: Sequence[Replica],
    number: int,
    block_hash: bytes,
    nonce: int,
    steps: int,
    target: int,
) -> pow.Ticket | None:
    """Walk once for (block hash, nonce); the ticket if it wins, else None.

    `replicas_in_chain_order` are this account's replicas as `storage:replica_at` lists them:
    the walk picks them by index, as the verifier will.
    """
    previous = pow.walk_seed(block_hash, account, nonce)
    walked: list[tuple[Replica, int, bytes]] = []
    for _ in range(steps):
        position, selector = pow.choose_chunk(previous, len(replicas_in_chain_order))
        replica = replicas_in_chain_order[position]
        chunk_index = pow.chunk_of(selector, replica.size)
        signature = key.sign(pow.step_message(block_hash, account, previous, replica.sealed_chunks[chunk_index]))
        walked.append((replica, chunk_index, signature))
        previous = signature
    if pow.score([signature for _, _, signature in walked]) >= target:
        return None
    proven = []  # paths only for a winner: the walk itself reads chunks and signs, nothing more
    for replica, chunk_index, signature in walked:
        sealed_chunk, replica_path, chunk_path = replica.step(chunk_index)
        proven.append(pow.Step(sealed_chunk, tuple(replica_path), tuple(chunk_path), signature))
    return pow.Ticket(number, block_hash, account, nonce, tuple(proven))
