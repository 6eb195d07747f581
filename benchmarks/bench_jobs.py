"""No-op jobs for the benchmarks: a 20-op chain and a 1 -> 50 -> 1 fan-out."""

from __future__ import annotations

from orchestrator import in_process_executor, job, multiprocess_executor, op


@op
def start() -> int:
    return 0


@op
def step(x: int) -> int:
    return x


@op
def gather(xs: list[int]) -> int:
    return len(xs)


def chain_body() -> None:
    value = start()
    for i in range(19):
        value = step.alias(f"step_{i}")(value)


def fan_body() -> None:
    s = start()
    gather([step.alias(f"leaf_{i}")(s) for i in range(50)])


def make(kind: str, executor: str, method: str = "spawn", reuse: bool = False):  # type: ignore[no-untyped-def]
    """Factory used through build_reconstructable_job: (chain|fan, in_process|multiprocess,
    start method, reuse_processes)."""
    body = chain_body if kind == "chain" else fan_body
    if executor == "in_process":
        executor_def = in_process_executor
    else:
        start_method = (
            {"forkserver": {"preload_modules": ["bench_jobs"]}}
            if method == "forkserver"
            else {"spawn": {}}
        )
        executor_def = multiprocess_executor.configured(
            {"max_concurrent": 2, "start_method": start_method, "reuse_processes": reuse}
        )
    suffix = "_reuse" if reuse else ""
    return job(name=f"{kind}_{executor}_{method}{suffix}", executor_def=executor_def)(body)
