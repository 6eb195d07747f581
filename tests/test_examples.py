"""Every example under ``examples/`` runs and gives the outputs its docstring promises.

The examples are loaded the way the CLI loads ``-f FILE``
(:func:`orchestrator.definitions.reconstruct.load_file`), so these tests also cover file
loading, sibling imports from a loaded file, and pointers to file-defined jobs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from orchestrator import (
    ConfigError,
    Definitions,
    EventType,
    ExecuteInProcessResult,
    JobDefinition,
    SelectionError,
    execute_job,
    reconstructable,
)
from orchestrator.definitions.reconstruct import load_file
from orchestrator.errors import InvalidInputError, PartitionError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # File pointers are relative to the working directory, as they are for the CLI.
    monkeypatch.chdir(ROOT)


def load_example(name: str) -> ModuleType:
    return load_file(f"examples/{name}.py")


def log_messages(result: ExecuteInProcessResult) -> list[str]:
    return [
        e.message for e in result.all_events if e.event_type_value == EventType.LOG_MESSAGE.value
    ]


# -- basic_job ------------------------------------------------------------------------------


def test_basic_job_adds_one_to_five() -> None:
    job_def = load_example("basic_job").basic_job

    result = job_def.execute_in_process()

    assert result.success
    assert result.output_for_node("return_five") == 5
    assert result.output_for_node("add_one") == 6


# -- op_selection ---------------------------------------------------------------------------


def test_selection_job_runs_whole_chain() -> None:
    job_def = load_example("op_selection").selection_job

    result = job_def.execute_in_process()

    assert [result.output_for_node(n) for n in ("return_one", "add_two", "multi_three")] == [
        1,
        3,
        9,
    ]


def test_selection_star_add_two_skips_multi_three() -> None:
    job_def = load_example("op_selection").selection_job

    result = job_def.execute_in_process(op_selection=["*add_two"])

    assert result.success
    assert sorted(e.step_key for e in result.get_step_success_events()) == [
        "add_two",
        "return_one",
    ]
    assert result.output_for_node("add_two") == 3
    with pytest.raises(InvalidInputError, match="multi_three"):
        result.output_for_node("multi_three")


def test_selection_of_downstream_op_takes_input_from_run_config() -> None:
    # Given only multi_three is selected, its input must come from run config.
    job_def = load_example("op_selection").selection_job
    run_config = {"ops": {"multi_three": {"inputs": {"i": 10}}}}

    result = job_def.execute_in_process(op_selection=["multi_three"], run_config=run_config)

    assert result.output_for_node("multi_three") == 30


def test_selection_unknown_op_names_closest() -> None:
    job_def = load_example("op_selection").selection_job

    with pytest.raises(SelectionError, match="add_two"):
        job_def.execute_in_process(op_selection=["add_tow"])


# -- graph_jobs -----------------------------------------------------------------------------


def test_graph_jobs_share_graph_with_different_resources() -> None:
    module = load_example("graph_jobs")

    prod = module.do_stuff_prod.execute_in_process()
    local = module.do_stuff_local.execute_in_process()

    assert module.do_stuff_prod.graph_def is module.do_stuff_local.graph_def is module.do_stuff
    assert prod.output_for_node("interact_with_server") == "pong from prod.example.com"
    assert local.output_for_node("interact_with_server") == "pong from the local stub"
    assert prod.run.tags["env"] == "prod"
    assert local.run.tags["env"] == "local"


def test_graph_job_resource_config_overridden_at_launch() -> None:
    module = load_example("graph_jobs")
    run_config = {"resources": {"server": {"config": {"host": "staging.example.com"}}}}

    result = module.do_stuff_prod.execute_in_process(run_config=run_config)

    assert result.output_for_node("interact_with_server") == "pong from staging.example.com"


# -- default_config -------------------------------------------------------------------------


def test_default_config_is_used_and_logged() -> None:
    job_def = load_example("default_config").do_it_all_with_default_config

    result = job_def.execute_in_process()

    assert result.output_for_node("do_something") == "stuff"
    assert "config_param: stuff" in log_messages(result)


def test_default_config_replaced_by_launch_config() -> None:
    job_def = load_example("default_config").do_it_all_with_default_config
    run_config = {"ops": {"do_something": {"config": {"config_param": "other"}}}}

    result = job_def.execute_in_process(run_config=run_config)

    assert result.output_for_node("do_something") == "other"


def test_default_config_unknown_key_names_path() -> None:
    job_def = load_example("default_config").do_it_all_with_default_config
    run_config = {"ops": {"do_something": {"config": {"config_parm": "x"}}}}

    with pytest.raises(ConfigError, match=r"ops\.do_something\.config"):
        job_def.execute_in_process(run_config=run_config)


# -- config_mapping -------------------------------------------------------------------------


def test_config_mapping_maps_simplified_param() -> None:
    job_def = load_example("config_mapping").do_it_all_with_simplified_config

    result = job_def.execute_in_process(run_config={"simplified_param": "stuff"})

    assert result.output_for_node("do_something") == "stuff"
    assert "config_param: stuff" in log_messages(result)
    assert job_def.config_mapping is not None


def test_config_mapping_yaml_file_matches() -> None:
    job_def = load_example("config_mapping").do_it_all_with_simplified_config
    run_config = yaml.safe_load((EXAMPLES / "simplified_config.yaml").read_text())

    result = job_def.execute_in_process(run_config=run_config)

    assert result.output_for_node("do_something") == "stuff"


def test_config_mapping_rejects_missing_outer_value() -> None:
    job_def = load_example("config_mapping").do_it_all_with_simplified_config

    with pytest.raises(ConfigError, match="simplified_param"):
        job_def.execute_in_process(run_config={})


# -- partitioned ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us", "report for us in USD"),
        ("eu", "report for eu in EUR"),
        ("apac", "report for apac in JPY"),
    ],
)
def test_static_partitions_give_each_region_its_config(region: str, expected: str) -> None:
    job_def = load_example("partitioned").regional_report

    result = job_def.execute_in_process(partition_key=region)

    assert result.output_for_node("build_regional_report") == expected
    assert f"building the report of partition {region}" in log_messages(result)
    assert result.run.partition_key == region


def test_static_partitions_listed_and_unknown_key_rejected() -> None:
    job_def = load_example("partitioned").regional_report

    assert job_def.partitions_def is not None
    assert job_def.partitions_def.get_partition_keys() == ["us", "eu", "apac"]
    with pytest.raises(PartitionError, match="us"):
        job_def.execute_in_process(partition_key="usa")


def test_daily_partition_key_reaches_op() -> None:
    job_def = load_example("partitioned").daily_digest

    result = job_def.execute_in_process(partition_key="2024-03-01")

    assert result.output_for_node("summarize_day") == "digest of 2024-03-01"
    assert "summarizing partition 2024-03-01" in log_messages(result)
    assert job_def.partitions_def is not None
    assert job_def.partitions_def.get_partition_keys()[0] == "2024-01-01"


# -- main_job -------------------------------------------------------------------------------


EXPECTED_REPORT = {
    "by_region": {"north": 245, "south": 315, "west": 200},
    "total": 760,
    "best_region": "south",
}


def test_sales_report_fans_out_and_in() -> None:
    job_def = load_example("main_job").sales_report

    result = job_def.execute_in_process()

    assert result.success
    assert result.output_for_node("build_report") == EXPECTED_REPORT
    assert result.output_for_node("load_orders", "south") == [300, 15]
    assert result.output_for_node("total_west") == 200
    assert result.run.tags["team"] == "sales"


def test_sales_report_tags_and_default_limits() -> None:
    job_def = load_example("main_job").sales_report

    tagged = {h for h, node in job_def.op_nodes.items() if node.tags.get("database") == "orders"}

    assert tagged == {"total_north", "total_south", "total_west"}
    multiprocess = job_def.default_run_config["execution"]["config"]["multiprocess"]
    assert multiprocess["tag_concurrency_limits"] == [
        {"key": "database", "value": "orders", "limit": 2}
    ]


def test_sales_report_runs_from_its_file_pointer_in_process() -> None:
    # Given the job loaded from its file and the example in-process run config,
    job_def = load_example("main_job").sales_report
    run_config = yaml.safe_load((EXAMPLES / "in_process.yaml").read_text())

    # when it runs through execute_job (which rebuilds it from its pointer),
    recon = reconstructable(job_def)
    result = execute_job(recon, run_config=run_config)

    # then the pointer is relative to the working directory and the report comes back.
    assert recon.to_dict()["location"] == {"file": "examples/main_job.py"}
    assert result.success
    assert result.output_for_node("build_report") == EXPECTED_REPORT


# -- definitions ----------------------------------------------------------------------------


ALL_JOBS = [
    "sales_report",
    "basic_job",
    "selection_job",
    "do_stuff_prod",
    "do_stuff_local",
    "do_it_all_with_default_config",
    "do_it_all_with_simplified_config",
    "regional_report",
    "daily_digest",
    "word_count",
]


def test_definitions_lists_every_example_job() -> None:
    defs = load_example("definitions").defs

    assert isinstance(defs, Definitions)
    assert defs.job_names == ALL_JOBS
    assert all(isinstance(defs.get_job_def(name), JobDefinition) for name in ALL_JOBS)


def test_definitions_jobs_run() -> None:
    defs = load_example("definitions").defs

    assert defs.get_job_def("basic_job").execute_in_process().output_for_node("add_one") == 6
    prod = defs.get_job_def("do_stuff_prod").execute_in_process()
    assert prod.output_for_node("interact_with_server") == "pong from prod.example.com"


# -- each example as a script ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected_lines"),
    [
        ("basic_job", ["success: True", "add_one -> 6"]),
        (
            "op_selection",
            [
                "whole job: multi_three -> 9",
                "with op_selection ['*add_two']: ran ['add_two', 'return_one']",
                "  add_two -> 3",
            ],
        ),
        (
            "graph_jobs",
            [
                "do_stuff_prod: pong from prod.example.com",
                "do_stuff_local: pong from the local stub",
            ],
        ),
        ("default_config", ["default config: stuff", "launch config: other stuff"]),
        ("config_mapping", ["do_something -> stuff"]),
        ("partitioned", ["eu: report for eu in EUR", "2024-03-01: digest of 2024-03-01"]),
        ("main_job", ['  "total": 760']),
        ("dynamic_fanout", ["{'empty_txt': 0, 'notes_txt': 3, 'todo_md': 4}", "total: 7"]),
        (
            "definitions",
            ["sales_report: load_orders, total_north, total_south, total_west, build_report"],
        ),
    ],
)
def test_example_script_runs(script: str, expected_lines: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, f"examples/{script}.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for line in expected_lines:
        assert line in lines, proc.stdout
    if script in ("default_config", "config_mapping"):
        assert "config_param: stuff" in proc.stderr


# -- dynamic_fanout -------------------------------------------------------------------------


def test_dynamic_fanout_counts_each_file_in_its_own_step(tmp_path: Path) -> None:
    for name, text in {"a.txt": "one two", "b-2.md": "three", "c.csv": ""}.items():
        (tmp_path / name).write_text(text)
    module = load_example("dynamic_fanout")
    config = {"ops": {"files_in_directory": {"config": {"directory": str(tmp_path)}}}}
    result = execute_job(reconstructable(module.word_count), run_config=config)
    assert result.success
    assert result.output_for_node("count_words") == {"a_txt": 2, "b_2_md": 1, "c_csv": 0}
    assert result.output_for_node("total_words") == 3
    steps = {e.step_key for e in result.get_step_success_events()}
    assert {"count_words[a_txt]", "count_words[b_2_md]", "count_words[c_csv]"} <= steps
