"""State commitment (PROTOCOL section 7): a 16-ary sparse Merkle trie and its LMDB store.

* `node.state.trie` -- the trie rules and pure functions over a node getter: reads, batch
  updates, read proofs and `verify_proof` (needs no database: usable by light clients);
* `node.state.store` -- `StateStore`: nodes in LMDB with a decoded-node cache, committed inside
  the chain's write transaction, with reference-counted pruning and fork discard.
"""
