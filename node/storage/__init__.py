"""The image store: content-addressed blobs under Merkle roots, sealed replicas for mining."""
