"""Policy: models, loader, engine, explain, lint and policy tests."""
