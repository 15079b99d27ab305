"""Stand-ins for external services that tests start on loopback, so no test needs the network."""
