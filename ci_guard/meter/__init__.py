"""The metering proxy, its caps and the agent supervisor."""
