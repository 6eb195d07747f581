"""A job with hardcoded default config.

``do_it_all_with_default_config`` runs with ``config_param="stuff"`` unless the run is given
config of its own, which then replaces the default as a whole.

Run it with ``python examples/default_config.py``; the op logs ``config_param: stuff``.
"""

import logging

from orchestrator import Config, OpExecutionContext, RunConfig, job, op


class DoSomethingConfig(Config):
    config_param: str


@op
def do_something(context: OpExecutionContext, config: DoSomethingConfig) -> str:
    context.log.info("config_param: " + config.config_param)
    return config.config_param


default_config = RunConfig(ops={"do_something": DoSomethingConfig(config_param="stuff")})


@job(config=default_config)
def do_it_all_with_default_config() -> None:
    do_something()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = do_it_all_with_default_config.execute_in_process()
    print(f"default config: {result.output_for_node('do_something')}")

    override = {"ops": {"do_something": {"config": {"config_param": "other stuff"}}}}
    result = do_it_all_with_default_config.execute_in_process(run_config=override)
    print(f"launch config: {result.output_for_node('do_something')}")
