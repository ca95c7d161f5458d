"""The light client: verified reads from one untrusted node (`node.client.light.client`) and
the ``afterchain light`` CLI group (`node.client.light.cli`). Verification itself is `protocol.light`."""
