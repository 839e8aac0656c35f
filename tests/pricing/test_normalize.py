from __future__ import annotations

from ci_guard.pricing.normalize import from_anthropic, from_gemini, from_openai_chat, from_openai_responses
from ci_guard.pricing.usage import Usage


def test_missing_and_null_fields_are_zero():
    assert from_anthropic({"input_tokens": 3, "output_tokens": 1, "cache_creation_input_tokens": None,
                           "cache_read_input_tokens": None}) == Usage(input_tokens=3, output_tokens=1)
    assert from_openai_chat({"prompt_tokens": 5, "completion_tokens": 2, "prompt_tokens_details": None}) == Usage(
        input_tokens=5, output_tokens=2)
    assert from_openai_responses(None) == Usage()
    assert from_gemini({}) == Usage()


def test_anthropic_breakdown_fills_a_missing_total():
    usage = from_anthropic({"cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}})
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens, usage.cache_write_5m_tokens) == (30, 20, 10)


def test_inconsistent_counts_never_go_negative():
    usage = from_openai_chat({"prompt_tokens": 100, "prompt_tokens_details": {"cached_tokens": 150},
                              "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 9}})
    assert usage == Usage(input_tokens=0, cache_read_tokens=100, output_tokens=5, reasoning_tokens=5)
    assert from_anthropic({"input_tokens": -4}).input_tokens == 0


def test_gemini_tool_use_prompt_is_input():
    usage = from_gemini({"promptTokenCount": 100, "toolUsePromptTokenCount": 40, "cachedContentTokenCount": 20})
    assert (usage.input_tokens, usage.cache_read_tokens) == (120, 20)


def test_context_tokens_is_everything_the_model_read():
    usage = from_openai_responses({"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 600,
                                                                                   "cache_write_tokens": 300}})
    assert usage.context_tokens == 1000
