"""Start-up of ci-guard's own process: what it skips so that ``ci-guard run`` reaches its agent sooner.

Two things, both about ci-guard's process only (nothing here reaches the agent's environment):

* **The cyclic garbage collector** stays off until the event loop freezes what start-up built.
  Importing ci-guard's modules and libraries and building its pydantic models allocates ~50,000
  long-lived objects, and the collector's young-generation passes over them (~110 of them before
  the agent is spawned) cost ~12 ms of CPU on every launch while finding next to nothing to free:
  :func:`ci_guard.meter.loop.run` freezes all of it anyway (``gc.freeze``). So ``ci-guard run``
  (and ``start``, ``proxy``) pause the collector from the CLI's entry point and resume it right
  after that freeze; every other command resumes it as soon as click has chosen the command.

* **importlib.metadata**, ~10 ms of CPU to import (it pulls in email, zipfile, csv, ...) and
  needed only for two look-ups: pydantic's scan for third-party plugins (entry points of the
  ``pydantic`` group, run when the first model is built) and psycopg's version strings
  (``psycopg/version.py`` and ``psycopg_binary/version.py`` ask ``metadata.version()``).
  :func:`skip_metadata_lookups` answers both before those libraries are imported: ci-guard's
  process loads no pydantic plugins (as with ``PYDANTIC_DISABLE_PLUGINS=__all__``, which it does not
  set: the agent would inherit it), and psycopg's version is read from its ``.dist-info`` beside
  the package. Anything unusual (another layout, several candidates) leaves the library to do it
  its own way.
"""

from __future__ import annotations

import gc
import os
import sys
import types

# Commands whose start-up runs with the collector paused (resumed by ci_guard.meter.loop.run, or at exit).
GC_PAUSED_COMMANDS = frozenset({"run", "start", "proxy"})

_paused = False


def pause_gc() -> None:
    """Turn the cyclic collector off, unless someone else already did (then leave it to them)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_gc() -> None:
    """Turn the collector back on if :func:`pause_gc` turned it off; idempotent."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()


def gc_paused() -> bool:
    return _paused


def skip_metadata_lookups() -> None:
    """Spare this process importlib.metadata (see the module docstring); call before pydantic and
    psycopg are imported. Best effort and idempotent: a library already imported is left alone."""
    _no_pydantic_plugins()
    if "psycopg" not in sys.modules:
        for package in ("psycopg", "psycopg_binary"):
            _preset_version(package)


def _no_pydantic_plugins() -> None:
    # pydantic.plugin._schema_validator imports this module's get_plugins() when the first model is
    # built; the real one imports importlib.metadata and scans every installed distribution's entry points
    name = "pydantic.plugin._loader"
    if name in sys.modules:
        return
    loader = types.ModuleType(name, "ci-guard's process loads no pydantic plugins (ci_guard.startup).")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    # Anything else a later pydantic reads from it comes from the real module (loaded then, under
    # another name), so a pydantic that changed this private module still works, only slower.
    loader.__getattr__ = _real_pydantic_loader_attribute  # type: ignore[attr-defined]
    sys.modules[name] = loader


def _real_pydantic_loader_attribute(attr: str) -> object:
    if attr.startswith("__"):
        raise AttributeError(attr)  # the import system's own probes (__path__, ...): not pydantic's names
    import importlib.util

    real = sys.modules.get("pydantic.plugin._loader_real")
    if real is None:
        import pydantic.plugin

        path = os.path.join(os.path.dirname(pydantic.plugin.__file__), "_loader.py")
        spec = importlib.util.spec_from_file_location("pydantic.plugin._loader_real", path)
        if spec is None or spec.loader is None:
            raise AttributeError(attr)
        real = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = real
        spec.loader.exec_module(real)
    return getattr(real, attr)


def _preset_version(package: str) -> None:
    """``<package>.version`` with ``__version__`` read from the one ``<package>-<version>.dist-info``
    beside the package (its METADATA's Version), as ``importlib.metadata.version()`` would."""
    name = f"{package}.version"
    if name in sys.modules:
        return
    version = _dist_info_version(package)
    if version is None:
        return
    module = types.ModuleType(name, f"{package} distribution version (from its dist-info; ci_guard.startup).")
    module.__version__ = version  # type: ignore[attr-defined]
    sys.modules[name] = module


def _dist_info_version(package: str) -> str | None:
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    locations = list(spec.submodule_search_locations)
    if len(locations) != 1:
        return None
    site = os.path.dirname(locations[0])
    prefix = f"{package}-"
    try:
        found = [e for e in os.listdir(site) if e.startswith(prefix) and e.endswith(".dist-info")]
    except OSError:
        return None
    if len(found) != 1:
        return None
    try:
        with open(os.path.join(site, found[0], "METADATA"), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("Version:"):
                    return line.partition(":")[2].strip() or None
                if not line.strip():  # the end of the headers
                    return None
    except (OSError, UnicodeDecodeError):
        return None
    return None
