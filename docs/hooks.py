"""MkDocs hook (``hooks:`` in mkdocs.yml): before each build, check that the generated reference
pages still match the code, so a stale page fails ``mkdocs build --strict`` (a warning: a plain
``mkdocs serve`` still previews)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.reference_pages")


def _generator() -> Any:
    path = Path(__file__).with_name("gen_reference.py")
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_pre_build(config: Any) -> None:
    generator = _generator()
    for path, _, _ in generator.stale_pages():
        log.warning(
            "%s does not match the code; regenerate it with "
            "`.venv/bin/python docs/gen_reference.py`",
            path.relative_to(generator.ROOT),
        )
