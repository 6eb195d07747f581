"""Griffe extension for the API reference (mkdocs.yml): the package's docstrings cross-refer
with Sphinx roles (``:class:`Instance```, ``:meth:`~Executor.wait```), which Markdown would
print as they are. Each role becomes inline code of its target (its last part after ``~``, as
Sphinx shows it). The docstrings themselves are left alone."""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")


def plain(text: str) -> str:
    """``text`` with every Sphinx role replaced by inline code."""

    def code(match: re.Match[str]) -> str:
        target = match.group(2)
        return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"

    return ROLE.sub(code, text)


class SphinxRoles(Extension):
    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
