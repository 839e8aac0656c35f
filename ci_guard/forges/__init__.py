"""Forge clients: GitHub (PyGithub) and GitLab (python-gitlab)."""
