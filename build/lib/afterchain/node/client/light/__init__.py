"""The light client: verified reads from one untrusted node (`node.light.client`) and the
``afterchain light`` CLI group (`node.light.cli`). Verification itself is `protocol.light`."""
