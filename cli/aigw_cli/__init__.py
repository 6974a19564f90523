"""The ``aigw`` command line: one console script, one subcommand per job.

Each subcommand lives in the package that does the work; this package only parses the
arguments of the subcommand named on the command line and imports that one package, so
``aigw sidecar`` never loads kopf and ``aigw operator`` never loads the data plane.
"""

__all__: list[str] = []
