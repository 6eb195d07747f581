"""The README and the docs site stay true to the code: the README is short and its example runs;
the generated reference pages match the click commands and the settings model; every page is
in the site's nav; the API page covers the package's public names; and every test the docs
name as proof exists."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click
import yaml

import orchestrator
from orchestrator.cli.main import cli
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))
WRITTEN = [README, ROOT / "CONTRIBUTING.md", *PAGES]
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


# -- the README --------------------------------------------------------------------------------


def test_the_readme_is_under_200_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) < 200, f"README.md has {len(lines)} lines; the manual belongs in docs/"


def test_the_readme_example_runs(tmp_path: Path) -> None:
    # Given the README's first Python block, which prints what its last line's comment says
    code = re.findall(r"```python\n(.+?)\n```", README.read_text(), re.S)[0]
    expected = re.search(r"#\s*(.+)$", code.splitlines()[-1])
    assert expected, "the example's last line must say what it prints"
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 12, "a short example"
    # When it runs on its own, in an empty home and with no server configured
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["ORCHESTRATOR_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it prints that, and needed no server (nothing was written to the home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == expected.group(1).strip()
    assert list(home.iterdir()) == []


def test_relative_links_of_the_readme_and_contributing_resolve() -> None:
    for doc in (README, ROOT / "CONTRIBUTING.md"):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


# -- tests named by the docs -------------------------------------------------------------------


def test_every_row_of_the_fault_table_names_tests_that_exist() -> None:
    text = (DOCS / "guarantees.md").read_text()
    header = "| Fault or guarantee | What happens | Proved by |"
    assert header in text
    rows = text.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    assert len(rows) >= 15, rows
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        assert len(cells) == 3, row
        named = TEST_REF.findall(cells[2])
        assert named, f"this row names no test as `tests/path.py::test_name`: {row}"
        for path, name in named:
            assert (ROOT / path).is_file(), f"{path} does not exist ({row[:60]}...)"
            assert name in defined_tests(ROOT / path), f"{path}::{name} does not exist"


def test_every_test_named_anywhere_in_the_docs_exists() -> None:
    for doc in WRITTEN:
        for path, name in TEST_REF.findall(doc.read_text()):
            assert (ROOT / path).is_file(), f"{doc.name}: {path} does not exist"
            assert name in defined_tests(ROOT / path), f"{doc.name}: {path}::{name} is gone"


# -- generated reference pages -----------------------------------------------------------------


def test_the_committed_reference_pages_match_a_fresh_generation() -> None:
    stale = generator().stale_pages()
    assert not stale, (
        f"{[str(p.relative_to(ROOT)) for p, _, _ in stale]} are stale: run "
        "`.venv/bin/python docs/gen_reference.py` and commit the result"
    )


def command_paths() -> list[tuple[str, click.Command, click.Context]]:
    """Every visible command of the click tree (walked here, not by the generator)."""
    found = []
    pending = [(cli, click.Context(cli, info_name="orchestrator"))]
    while pending:
        command, ctx = pending.pop()
        found.append((ctx.command_path, command, ctx))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    pending.append((sub, click.Context(sub, parent=ctx, info_name=name)))
    return found


def test_the_cli_page_lists_every_command_and_option() -> None:
    page = (DOCS / "reference" / "cli.md").read_text()
    paths = command_paths()
    assert len(paths) > 20
    for path, command, ctx in paths:
        heading = re.search(rf"^#+ {re.escape(path)}$", page, re.M)
        assert heading, f"no section for `{path}`"
        rest = page[heading.end() :]
        section = re.split(r"^#+ orchestrator\b.*$", rest, maxsplit=1, flags=re.M)[0]
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            if isinstance(param, click.Option):
                for opt in param.opts:
                    assert opt in section, f"`{path}`: option {opt} is missing"
            else:
                assert param.make_metavar(ctx) in section, f"`{path}`: argument {param.name}"


def test_the_settings_page_lists_every_setting_with_a_description() -> None:
    page = (DOCS / "reference" / "settings.md").read_text()
    rows = {line.split("`")[1]: line for line in page.splitlines() if line.startswith("| `")}
    prefix = Settings.model_config.get("env_prefix", "")
    no_description = generator().NO_DESCRIPTION
    for name in Settings.model_fields:
        variable = f"{prefix}{name}".upper()
        assert variable in rows, f"{variable} is not in docs/reference/settings.md"
        # A setting whose meaning the code does not state is shown as such: state it in the
        # code (a Field description or the class docstring), not in the page.
        assert no_description not in rows[variable], f"{variable}: no description in the code"


def test_every_orchestrator_variable_the_docs_mention_exists() -> None:
    prefix = Settings.model_config.get("env_prefix", "").upper()
    known = {f"{prefix}{name.upper()}" for name in Settings.model_fields}
    compose = (ROOT / "docker-compose.yml").read_text()
    tests_and_ci = "".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    tests_and_ci += (ROOT / ".ci" / "run").read_text()
    for doc in WRITTEN:
        for variable in set(re.findall(r"\bORCHESTRATOR_[A-Z_]*[A-Z]\b", doc.read_text())):
            if variable.startswith("ORCHESTRATOR_TEST_"):
                assert variable in tests_and_ci, f"{doc.name}: {variable} is read by no test"
            else:
                assert variable in known or variable in compose, (
                    f"{doc.name}: {variable} is neither a setting nor a docker-compose variable"
                )


# -- the site ----------------------------------------------------------------------------------


def nav_pages(entry: object) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in nav_pages(value)]
    return []


def test_the_nav_lists_every_page_under_docs() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = nav_pages(config["nav"])
    on_disk = [str(p.relative_to(DOCS)) for p in PAGES]
    assert sorted(listed) == sorted(on_disk)
    assert len(listed) == len(set(listed)), "a page is listed twice"


def test_the_api_page_documents_the_public_names_by_their_root_names_only() -> None:
    page = (DOCS / "reference" / "api.md").read_text()
    targets = re.findall(r"^::: (\S+)$", page, re.M)
    public = set(orchestrator.__all__)
    for target in targets:
        package, _, name = target.partition(".")
        assert package == "orchestrator" and name in public, (
            f"`::: {target}`: document root names of orchestrator.__all__ only"
        )
    rendered = {t.split(".", 1)[1] for t in targets}
    for name in public - rendered:
        assert f"`{name}`" in page, f"orchestrator.{name} is not on docs/reference/api.md"
