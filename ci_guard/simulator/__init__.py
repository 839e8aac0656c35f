"""A scripted fake provider speaking the Anthropic and OpenAI wire formats."""
