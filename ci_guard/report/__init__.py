"""Rendering: PR/MR comments, step summaries."""
