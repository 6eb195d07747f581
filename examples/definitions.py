"""A code location holding every example job.

Point the CLI at it to list and run them:

    orchestrator job list -f examples/definitions.py
    orchestrator job execute -f examples/definitions.py -j basic_job

Loading a file puts its directory on ``sys.path`` (as ``python examples/definitions.py``
would), so the sibling example modules import by their plain names.
"""

from basic_job import basic_job
from config_mapping import do_it_all_with_simplified_config
from default_config import do_it_all_with_default_config
from dynamic_fanout import word_count
from graph_jobs import do_stuff_local, do_stuff_prod
from main_job import sales_report
from op_selection import selection_job
from partitioned import daily_digest, regional_report

from orchestrator import Definitions

defs = Definitions(
    jobs=[
        sales_report,
        basic_job,
        selection_job,
        do_stuff_prod,
        do_stuff_local,
        do_it_all_with_default_config,
        do_it_all_with_simplified_config,
        regional_report,
        daily_digest,
        word_count,
    ]
)


if __name__ == "__main__":
    for job_def in defs.get_all_job_defs():
        print(f"{job_def.name}: {', '.join(job_def.op_nodes)}")
