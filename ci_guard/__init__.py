"""ci-guard: spend control for AI coding agents in CI."""

__version__ = "0.1.0"
