"""One graph, two jobs: the same ops bound to different resources per environment.

The ``do_stuff`` graph holds the logic; ``to_job`` binds it to a ``server`` resource.
``do_stuff_prod`` talks to a configured ``Server``; ``do_stuff_local`` gets a stand-in that
needs no network, so the graph can be tried on a laptop.

Run it with ``python examples/graph_jobs.py``.
"""

from orchestrator import ConfigurableResource, OpExecutionContext, ResourceDefinition, graph, op


class Server(ConfigurableResource):
    """A client for some service. Its fields are config: run config may override ``host``."""

    host: str

    def ping_server(self) -> str:
        # A real client would open a connection here; the example only says where it would go.
        return f"pong from {self.host}"


class StubServer:
    """What local runs use instead of a real server."""

    def ping_server(self) -> str:
        return "pong from the local stub"


@op
def interact_with_server(context: OpExecutionContext, server: Server) -> str:
    reply = server.ping_server()
    context.log.info(f"server replied: {reply}")
    return reply


@graph
def do_stuff() -> None:
    interact_with_server()


do_stuff_prod = do_stuff.to_job(
    name="do_stuff_prod",
    resource_defs={"server": Server(host="prod.example.com")},
    tags={"env": "prod"},
)

do_stuff_local = do_stuff.to_job(
    name="do_stuff_local",
    resource_defs={"server": ResourceDefinition.hardcoded_resource(StubServer())},
    tags={"env": "local"},
)


if __name__ == "__main__":
    for job_def in (do_stuff_prod, do_stuff_local):
        result = job_def.execute_in_process()
        print(f"{job_def.name}: {result.output_for_node('interact_with_server')}")
