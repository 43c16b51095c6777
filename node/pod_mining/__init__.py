"""Proof of data, the uploader's and the verifier's side (issue 5, PROTOCOL sections 10-11).

* `pipeline`: file -> SHA-256 -> decode -> watermark for this chain and uploader -> watermarked
  copy written -> its verification rendition -> claim checked with the validators' own rule ->
  `copyright.register` call, signed. Pure steps: nothing in it talks to a node.
* `upload`: `register_image(client, signer, path, ...)`, the pipeline run against a node through
  `node.client` (genesis hash, duplicate check, submission, what the chain made of it).
* `verify`: image bytes -> size, pHash and watermark payload; what `copyright_verifyImage` runs in
  a worker thread before looking the payload and pHash up in state.

The modules are imported on use (they load the imaging stack: numpy and numba).
"""
