"""The smallest useful job: ``return_five`` feeds ``add_one``.

Because ``add_one`` takes the output of ``return_five`` as its input, it runs after it.

Run it with ``python examples/basic_job.py`` or
``orchestrator job execute -f examples/basic_job.py -j basic_job``.
"""

from orchestrator import job, op


@op
def return_five() -> int:
    return 5


@op
def add_one(arg: int) -> int:
    return arg + 1


@job
def basic_job() -> None:
    add_one(return_five())


if __name__ == "__main__":
    result = basic_job.execute_in_process()
    print(f"success: {result.success}")
    print(f"add_one -> {result.output_for_node('add_one')}")
