"""Context policy in the proxy: request transforms that make a call cheaper, each opt-in.

One module per transform (cache, prune, clear, route, thinking, reasoning); :class:`ContextTransforms`
applies the ones the run's policy names, in a fixed order, and says what it changed. A request no
transform applies to is returned as the very object the agent sent, so the proxy forwards the
agent's own bytes; a run whose policy names no context block never builds a transformer at all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ci_guard.meter.providers.body import LAZY_MIN_BYTES, RequestBody, Split
from ci_guard.meter.transforms import cache, clear, prune, reasoning, route, splice, thinking
from ci_guard.meter.transforms.toolresults import tool_results
from ci_guard.policy.decision import ContextPolicy

OPENAI = ("chat.completions", "responses")  # the OpenAI wire formats whose tool outputs are pruned


@dataclass
class Changes:
    """What the proxy changed in one call (recorded with the call, summed per run)."""

    breakpoints_added: int = 0
    pruned_results: int = 0
    pruned_tokens: int = 0  # estimated
    cleared_results: int = 0  # by the proxy, or tool uses the provider reported clearing
    cleared_tokens: int = 0  # estimated by the proxy, or as the provider reported
    cleared_by: str | None = None  # "proxy" | "provider"
    context_edit: bool = False  # the Anthropic context-management edit was sent
    thinking_edit: bool = False  # the Anthropic thinking-clearing edit (clear_thinking_20251015) was sent
    cleared_thinking_turns: int = 0  # as the provider reported
    route: str | None = None
    routed_from: str | None = None
    routed_to: str | None = None
    thinking_budget_from: int | None = None
    thinking_budget_to: int | None = None
    reasoning_effort_from: str | None = None  # OpenAI reasoning effort lowered to the policy's ceiling
    reasoning_effort_to: str | None = None
    agent_caches: bool = False  # the agent set its own cache_control (its caching was left alone)

    def any(self) -> bool:
        return bool(self.breakpoints_added or self.pruned_results or self.cleared_results or self.cleared_tokens
                    or self.context_edit or self.thinking_edit or self.route or self.thinking_budget_from
                    or self.reasoning_effort_from)

    def as_json(self) -> dict[str, Any]:
        """Only what happened (no zeros, no nulls), so a ledger row stays small."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) not in (None, 0, False)}


@dataclass
class Transformed:
    body: dict[str, Any]
    model: str | None
    changes: Changes = field(default_factory=Changes)
    beta: str | None = None  # an anthropic-beta feature the request now needs


class ContextTransforms:
    def __init__(self, policy: ContextPolicy) -> None:
        self.policy = policy
        # this run's cuts: the same results come back on every later turn (prune.CutMemo)
        self._cuts = prune.CutMemo(policy.prune_tool_results) if policy.prune_tool_results else None
        # and what pruning made of each large message, by its bytes (a conversation's first sight)
        self._seen = splice.SeenCuts() if policy.prune_tool_results else None
        # this run's conversations as last seen: `cache: auto` alone then decodes only new messages
        # (and, for pruning and clearing, where its messages are: their bytes need not be located again)
        self._messages = splice.MessageMemo() if (policy.cache == "auto" or policy.prune_tool_results
                                                  or policy.clear_old_tool_results) else None
        # OpenAI's conversations, one memo per wire format (a memo's cuts are one format's reading)
        self._memos = {endpoint: splice.MessageMemo(splice.scan_openai) for endpoint in OPENAI} if (
            policy.prune_tool_results or policy.clear_old_tool_results) else {}

    def _memo(self, endpoint: str) -> splice.MessageMemo | None:
        return self._messages if endpoint == "messages" else self._memos.get(endpoint)

    def split(self, provider: str, endpoint: str) -> Split | None:
        """How the proxy splits a large request of this run: for a conversation this run indexes
        (Anthropic's for `cache: auto` or pruning, OpenAI's for pruning) and has not seen, one pass
        that also locates its messages (splice.MessageMemo.split); None: the plain split."""
        if provider == "anthropic" and endpoint == "messages" and self._messages is not None and (
                self.policy.cache == "auto" or self.policy.prune_tool_results):
            return self._messages.split
        # OpenAI's index serves pruning alone (with the proxy's own clearing the conversation is
        # decoded whole: splice.prepare), so only then is it located in the split
        pruning_only = bool(self.policy.prune_tool_results) and not self.policy.clear_old_tool_results
        memo = self._memos.get(endpoint) if provider == "openai" and pruning_only else None
        if memo is not None:
            # the same one pass, with each item's values left undecoded (a tool output is the item's
            # own string there): 0.50 ms per 1.3 MB request, where the plain split and then the
            # index's own pass cost 0.41 + 0.52 ms
            return functools.partial(memo.split, key=splice.CONVERSATION[endpoint])
        return None

    def apply(self, *, provider: str, endpoint: str, raw: bytes, body: dict[str, Any], model: str | None,
              max_output: int | None, input_tokens: int, stream: bool,
              set_model: Callable[[dict[str, Any], str], dict[str, Any]],
              not_dearer: Callable[[str | None, str], bool]) -> Transformed:
        p, changes = self.policy, Changes()
        anthropic = provider == "anthropic" and endpoint == "messages"
        spec_prune, spec_clear = p.prune_tool_results, p.clear_old_tool_results
        if p.route:
            chosen = route.pick(p.route, route.features(body, model, max_output, input_tokens, stream))
            if chosen is not None and chosen.model != model and not_dearer(model, chosen.model):
                body = set_model(body, chosen.model)
                changes.route, changes.routed_from, changes.routed_to = chosen.name, model, chosen.model
                model = chosen.model
        if anthropic and p.max_thinking_tokens:
            body, before = thinking.clamp(body, p.max_thinking_tokens)
            if before is not None:
                changes.thinking_budget_from, changes.thinking_budget_to = before, p.max_thinking_tokens
        if provider == "openai" and p.max_reasoning_effort:
            body, effort = reasoning.clamp(endpoint, body, model, p.max_reasoning_effort)
            if effort is not None:
                changes.reasoning_effort_from, changes.reasoning_effort_to = effort, p.max_reasoning_effort
        editing = anthropic and clear.supports_context_editing(model)  # never a beta a model lacks
        # Routing, the clamps and server-side clearing change top-level fields only; the rest read
        # the conversation. A large request's conversation is then decoded once, remembering the
        # agent's bytes of each message, so a change is spliced into them (splice.py).
        before, prepared = body, None
        caching = anthropic and p.cache == "auto"
        agent_caches = caching and cache.caches_at_top(body)
        proxy_clear = bool(spec_clear) and not editing
        # Pruning and breakpoints on an Anthropic conversation the run's memo indexes (the usual
        # case: compact JSON, nothing else as large): only the messages they change are decoded
        # and written (splice.MessageMemo); otherwise the conversation is decoded once (splice.prepare).
        spliced = None
        indexable = anthropic or (provider == "openai" and endpoint in OPENAI)
        if isinstance(body, RequestBody) and indexable and not proxy_clear and (
                spec_prune or (caching and not agent_caches)):
            spliced = self._indexed(body, endpoint, caching and not agent_caches, changes)
        if spliced is not None:
            body = spliced
        elif isinstance(body, RequestBody) and (spec_prune or proxy_clear or (caching and not agent_caches)):
            body = prepared = splice.prepare(body, endpoint, self._memo(endpoint))
        results = tool_results(endpoint, body) if spliced is None and (spec_prune or proxy_clear) else []
        if spec_prune and results:
            pruned = prune.prune(endpoint, body, spec_prune, results, self._cuts)
            if pruned.results:
                body = pruned.body
                changes.pruned_results, changes.pruned_tokens = pruned.results, pruned.tokens
                results = tool_results(endpoint, body)
        beta = None
        server_clear = server_thinking = None
        if spec_clear:
            if editing:
                # The provider compares its own count with the trigger; the edit is only sent once the
                # proxy's estimate is past half of it, so small requests still go out byte for byte.
                if input_tokens * 2 >= spec_clear.trigger_tokens:
                    server_clear = spec_clear
            elif results:
                cleared = clear.clear(endpoint, body, spec_clear, input_tokens - changes.pruned_tokens, results)
                if cleared.results:
                    body = cleared.body
                    changes.cleared_results, changes.cleared_tokens = cleared.results, cleared.tokens
                    changes.cleared_by = "proxy"
        if editing and p.clear_old_thinking and clear.thinking_on(body):
            server_thinking = p.clear_old_thinking
        if server_clear or server_thinking:
            edited = clear.inject_edit(body, server_clear, server_thinking)
            if edited is not None:
                body, beta = edited.body, clear.BETA
                changes.context_edit, changes.thinking_edit = edited.tool_uses, edited.thinking
        if caching and spliced is None:
            if agent_caches or cache.manages_caching(body):
                changes.agent_caches = True
            else:
                skip_newest = bool(spec_prune) and any(
                    r.newest and self._cuts is not None and self._cuts(r.text) is not None for r in results)
                body, changes.breakpoints_added = cache.add_breakpoints(body, skip_newest)
        elif agent_caches:
            changes.agent_caches = True
        # read but not changed: the body as it was (the agent's own bytes when nothing else changed)
        return Transformed(before if body is prepared else body, model, changes, beta)

    def _indexed(self, body: RequestBody, endpoint: str, mark: bool, changes: Changes) -> RequestBody | None:
        """Pruning and (if ``mark``: Messages only) breakpoints by the run's index of the
        conversation, with ``changes`` filled in; None when the full splice must decide (then
        ``changes`` is untouched)."""
        conversation, memo = splice.CONVERSATION[endpoint], self._memo(endpoint)
        view = body.raw(conversation)
        if memo is None or not isinstance(view, memoryview) or any(
                key != conversation and len(body.raw(key) or b"") >= LAZY_MIN_BYTES for key in body):
            return None  # not a compact conversation of the agent's bytes, or another part as large
        index = memo.index(view, body.hint(conversation))
        if index is None:
            return None
        spec = self.policy.prune_tool_results
        plan = splice.prune_indexed(index, spec, self._cuts, endpoint, self._seen) \
            if spec and self._cuts is not None else None
        if spec and plan is None:
            return None
        mark = mark and not index.caches
        written = splice.write_indexed(body, index, plan.cuts if plan else {}, mark, bool(plan and plan.cuts_newest),
                                       conversation)
        if written is None:
            return None
        changes.agent_caches = endpoint == "messages" and index.caches and self.policy.cache == "auto"
        changes.breakpoints_added = written[1]
        if plan is not None:
            changes.pruned_results, changes.pruned_tokens = plan.results, plan.tokens
        return written[0]
