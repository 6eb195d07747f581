"""A job with a config mapping: a narrow outer config mapped onto the ops' config.

Whoever launches ``do_it_all_with_simplified_config`` gives ``{"simplified_param": ...}`` only;
``simplified_config`` turns it into config for every op that needs it.

Run it with ``python examples/config_mapping.py`` or
``orchestrator job execute -f examples/config_mapping.py -j do_it_all_with_simplified_config
-c examples/simplified_config.yaml``.
"""

import logging

from orchestrator import Config, OpExecutionContext, RunConfig, config_mapping, job, op


class DoSomethingConfig(Config):
    config_param: str


@op
def do_something(context: OpExecutionContext, config: DoSomethingConfig) -> str:
    context.log.info("config_param: " + config.config_param)
    return config.config_param


class SimplifiedConfig(Config):
    simplified_param: str


@config_mapping
def simplified_config(val: SimplifiedConfig) -> RunConfig:
    return RunConfig(ops={"do_something": DoSomethingConfig(config_param=val.simplified_param)})


@job(config=simplified_config)
def do_it_all_with_simplified_config() -> None:
    do_something()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = do_it_all_with_simplified_config.execute_in_process(
        run_config={"simplified_param": "stuff"}
    )
    print(f"do_something -> {result.output_for_node('do_something')}")
