"""Policy change preview: replay the ledger's runs against a proposed policy (`ci-guard what-if`)."""
