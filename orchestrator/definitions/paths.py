"""``file_relative_path``: paths next to a job file, whatever the working directory."""

from __future__ import annotations

import os


def file_relative_path(dunderfile: str, relative_path: str) -> str:
    """The path ``relative_path`` taken from the folder of ``dunderfile`` (pass ``__file__``):
    ``file_relative_path(__file__, "config/prod.yaml")``."""
    return os.path.join(os.path.dirname(dunderfile), relative_path)
