"""The image store: content-addressed blobs under Merkle roots (`node.primitives.merkle`), kept in
LMDB beside the chain; miners keep sealed replicas of them (`node.primitives.seal`)."""
