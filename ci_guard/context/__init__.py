"""Run context: what is known about the CI run being decided."""
