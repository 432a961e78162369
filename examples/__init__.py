"""Examples of aolo used from outside: policies written against the protocol of aolo.envs.protocol."""
