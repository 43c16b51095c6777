"""Click command groups of the ``imagechain`` CLI, one module per area; `node.cli` registers them."""
