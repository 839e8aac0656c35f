"""Where the proxy forwards to, and with which real credentials (read from ci-guard's own environment)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from ci_guard.errors import InvalidInputError
from ci_guard.secrets import register

DEFAULT_ANTHROPIC_UPSTREAM = "https://api.anthropic.com"
DEFAULT_OPENAI_UPSTREAM = "https://api.openai.com/v1"
UPSTREAM_CLIENTS = ("auto", "aiohttp")  # CI_GUARD_UPSTREAM_CLIENT: aiohttp is the escape hatch


@dataclass
class Upstreams:
    anthropic: str = DEFAULT_ANTHROPIC_UPSTREAM
    openai: str = DEFAULT_OPENAI_UPSTREAM
    anthropic_api_key: str | None = None
    anthropic_auth_token: str | None = None
    openai_api_key: str | None = None
    connect_timeout_s: float = 30.0
    read_timeout_s: float = 600.0  # the longest silence tolerated between bytes of a response
    client: str = "auto"  # the upstream HTTP client: "auto" (lean, aiohttp behind env proxies) or "aiohttp"
    # OpenAI data-residency region the upstream processes in (CI_GUARD_OPENAI_REGION), for a gateway in
    # front of eu.api.openai.com whose own host does not say so; None: read it from the upstream's host
    region: str | None = None

    def openai_region(self) -> str | None:
        """The data-residency region of the OpenAI upstream (``https://eu.api.openai.com/v1`` -> "eu"),
        None for the global endpoint or any other server. Regional endpoints bill an uplift on the
        models that support them (docs/pricing.md, "Regional processing")."""
        return self.region or openai_region(self.openai)

    def target(self, provider: str, tail: str) -> str:
        """The upstream URL for a proxied path (``tail`` starts after the provider prefix)."""
        if provider == "anthropic":
            return self.anthropic.rstrip("/") + "/" + tail.lstrip("/")
        # Our OpenAI base is /openai/v1 and the upstream base already ends in /v1 (or whatever an
        # OpenAI-compatible server uses), so the version segment is not repeated.
        rest = tail.lstrip("/")
        if rest.startswith("v1/") or rest == "v1":
            rest = rest[3:]
        return self.openai.rstrip("/") + "/" + rest

    def auth_headers(self, provider: str) -> dict[str, str]:
        if provider == "anthropic":
            if self.anthropic_api_key:
                return {"x-api-key": self.anthropic_api_key}
            if self.anthropic_auth_token:
                return {"authorization": f"Bearer {self.anthropic_auth_token}"}
            return {}
        if self.openai_api_key:
            return {"authorization": f"Bearer {self.openai_api_key}"}
        return {}


@lru_cache(maxsize=8)  # read on every OpenAI call of the proxy; the upstream URL does not change
def openai_region(url: str) -> str | None:
    """``<region>.api.openai.com`` -> ``<region>`` (us, eu, au, in, jp...); anything else -> None."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    region, dot, rest = host.partition(".")
    return region if dot and rest == "api.openai.com" and region.isalpha() and len(region) == 2 else None


def upstreams_from_env(env: Mapping[str, str], anthropic: str | None = None,
                       openai: str | None = None) -> Upstreams:
    """Upstream URLs (flag, then CI_GUARD_*_UPSTREAM, then the provider) and the real keys."""
    ups = Upstreams(
        anthropic=anthropic or env.get("CI_GUARD_ANTHROPIC_UPSTREAM") or Upstreams.anthropic,
        openai=openai or env.get("CI_GUARD_OPENAI_UPSTREAM") or Upstreams.openai,
        anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
        anthropic_auth_token=env.get("ANTHROPIC_AUTH_TOKEN") or None,
        openai_api_key=env.get("OPENAI_API_KEY") or env.get("CODEX_API_KEY") or None,
        read_timeout_s=_seconds(env.get("CI_GUARD_UPSTREAM_TIMEOUT"), 600.0),
        client=_client(env.get("CI_GUARD_UPSTREAM_CLIENT")),
        region=_region(env.get("CI_GUARD_OPENAI_REGION")),
    )
    for secret in (ups.anthropic_api_key, ups.anthropic_auth_token, ups.openai_api_key):
        register(secret)
    return ups


def _seconds(text: str | None, default: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise InvalidInputError(f"CI_GUARD_UPSTREAM_TIMEOUT: expected seconds, got {text!r}") from exc
    if value <= 0:
        raise InvalidInputError(f"CI_GUARD_UPSTREAM_TIMEOUT: expected a positive number of seconds, got {text!r}")
    return value


def _region(text: str | None) -> str | None:
    value = (text or "").strip().lower()
    if not value:
        return None
    if not (value.isascii() and value.isalpha() and len(value) == 2):
        raise InvalidInputError(f"CI_GUARD_OPENAI_REGION: expected a two-letter data-residency region such as "
                                f"eu or us, got {text!r}")
    return value


def _client(text: str | None) -> str:
    choice = (text or "auto").strip().lower()
    if choice not in UPSTREAM_CLIENTS:
        raise InvalidInputError(f"CI_GUARD_UPSTREAM_CLIENT: expected one of {', '.join(UPSTREAM_CLIENTS)}, "
                                f"got {text!r}")
    return choice


def missing_credentials(ups: Upstreams) -> list[str]:
    """Providers whose default (public) upstream has no real key: their calls would fail with 401.

    A custom upstream (a self-hosted model, the simulator) may need no key, so it is not reported.
    """
    return [f"{name} (set {env} for ci-guard)" for provider, name in (("anthropic", "Anthropic"), ("openai", "OpenAI"))
            if (env := missing_key(ups, provider))]


PRESET_PROVIDERS = {"claude-code": "anthropic", "codex": "openai"}


def missing_key(ups: Upstreams, provider: str | None) -> str | None:
    """The environment variable(s) to set when ``provider``'s public upstream has no key, else None.

    Only the names: a key's value is never part of a message.
    """
    if provider == "anthropic" and ups.anthropic.rstrip("/") == DEFAULT_ANTHROPIC_UPSTREAM \
            and not (ups.anthropic_api_key or ups.anthropic_auth_token):
        return "ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN"
    if provider == "openai" and ups.openai.rstrip("/") == DEFAULT_OPENAI_UPSTREAM and not ups.openai_api_key:
        return "OPENAI_API_KEY"
    return None


def require_keys(ups: Upstreams, *, preset: str | None = None, model: str | None = None,
                 model_provider: str | None = None) -> None:
    """Fail before the agent starts when the preset's or the decided model's provider has no key."""
    from ci_guard.errors import MissingCredentialError

    if preset in PRESET_PROVIDERS:
        env = missing_key(ups, PRESET_PROVIDERS[preset])
        if env:
            raise MissingCredentialError(f"preset {preset} needs a {PRESET_PROVIDERS[preset]} key and none is set: "
                                         f"set {env} for ci-guard (the agent gets a per-run token instead)")
    env = missing_key(ups, model_provider)
    if env:
        raise MissingCredentialError(f"the decided model {model} needs a {model_provider} key and none is set: "
                                     f"set {env} for ci-guard (the agent gets a per-run token instead)")
