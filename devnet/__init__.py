"""A local imagechain network for development: `imagechain devnet up|status|down`.

`layout` names what a devnet is on disk, `control` starts, inspects and stops its node
processes, and `cli` is the click group the node's command line registers.
"""
