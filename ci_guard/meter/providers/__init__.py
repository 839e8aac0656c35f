"""Wire-format adapters, one module per provider API."""
