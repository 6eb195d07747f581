"""Running part of a job with op selection.

``selection_job`` is ``return_one -> add_two -> multi_three``. The query ``*add_two`` selects
``add_two`` and everything upstream of it, so ``multi_three`` does not run.

Run it with ``python examples/op_selection.py`` or
``orchestrator job execute -f examples/op_selection.py -j selection_job --op-selection '*add_two'``.
"""

from orchestrator import job, op


@op
def return_one() -> int:
    return 1


@op
def add_two(i: int) -> int:
    return i + 2


@op
def multi_three(i: int) -> int:
    return i * 3


@job
def selection_job() -> None:
    multi_three(add_two(return_one()))


if __name__ == "__main__":
    full = selection_job.execute_in_process()
    print(f"whole job: multi_three -> {full.output_for_node('multi_three')}")

    subset = selection_job.execute_in_process(op_selection=["*add_two"])
    ran = sorted(event.step_key for event in subset.get_step_success_events())
    print(f"with op_selection ['*add_two']: ran {ran}")
    print(f"  return_one -> {subset.output_for_node('return_one')}")
    print(f"  add_two -> {subset.output_for_node('add_two')}")
