"""Dynamic fan-out: one step per file found at run time, then one step over all of them.

``files_in_directory`` lists a directory when the run starts and yields one
``DynamicOutput`` per file, keyed by a sanitized file name; ``count_words`` is mapped over
them (steps ``count_words[notes_txt]``, ``count_words[todo_md]``, ...: one per file, spread
over every worker on the Celery executor), and ``total_words`` gets their results as one list.
Without config the job writes three sample files to a temporary directory first.

Run it with ``python examples/dynamic_fanout.py`` or
``orchestrator job execute -f examples/dynamic_fanout.py -j word_count``.
"""

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from orchestrator import Config, DynamicOut, DynamicOutput, OpExecutionContext, job, op

SAMPLES = {"notes.txt": "ship the release", "todo.md": "write docs\nfix bugs", "empty.txt": ""}


class FilesConfig(Config):
    directory: str = ""  # empty: a temporary directory with a few sample files


@op(out=DynamicOut())
def files_in_directory(
    context: OpExecutionContext, config: FilesConfig
) -> Iterator[DynamicOutput[str]]:
    directory = Path(config.directory or tempfile.mkdtemp(prefix="word-count-"))
    if not config.directory:
        for name, text in SAMPLES.items():
            (directory / name).write_text(text)
    for path in sorted(directory.iterdir()):
        if path.is_file():
            # mapping keys are letters, digits and underscores
            yield DynamicOutput(str(path), mapping_key=re.sub(r"\W", "_", path.name))


@op
def count_words(context: OpExecutionContext, path: str) -> int:
    words = len(Path(path).read_text().split())
    context.log.info(f"{context.get_mapping_key()}: {words} words")
    return words


@op
def total_words(context: OpExecutionContext, counts: list[int]) -> int:
    context.log.info(f"{sum(counts)} words in {len(counts)} files")
    return sum(counts)


@job
def word_count() -> None:
    total_words(files_in_directory().map(count_words).collect())


if __name__ == "__main__":
    result = word_count.execute_in_process()
    print(result.output_for_node("count_words"))
    print("total:", result.output_for_node("total_words"))
