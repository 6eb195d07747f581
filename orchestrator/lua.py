"""Lua scripts shipped in the package, loaded one way everywhere.

Each script lives in a ``lua/`` folder beside the module that runs it, with a header stating its
KEYS and ARGV. The text is read from the package once per process, and each client gets one
registered ``Script`` per script (redis-py sends ``EVALSHA`` and loads the script again by itself
when the server lost it, e.g. after a restart).
"""

from __future__ import annotations

import functools
import threading
import weakref
from importlib import resources
from typing import Any

import redis


@functools.cache
def script_text(package: str, name: str, lib: str | None = None) -> str:
    """The text of ``<package>/lua/<name>.lua``, preceded by ``lua/<lib>.lua`` when given."""
    folder = resources.files(package).joinpath("lua")
    body = folder.joinpath(f"{name}.lua").read_text()
    if lib is None:
        return body
    return folder.joinpath(f"{lib}.lua").read_text() + "\n" + body


_registered: weakref.WeakKeyDictionary[redis.Redis, dict[tuple[str, str, str | None], Any]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def script(client: redis.Redis, package: str, name: str, lib: str | None = None) -> Any:
    """The registered script ``name`` of ``package`` for ``client`` (cached per client)."""
    key = (package, name, lib)
    with _lock:
        per_client = _registered.setdefault(client, {})
        found = per_client.get(key)
        if found is None:
            found = per_client[key] = client.register_script(script_text(package, name, lib))
        return found
