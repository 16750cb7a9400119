"""The one error of the conformance tools (tables, manifests, decoder commands, generation
checks)."""


class SuiteError(Exception):
    """A bad features table, manifest or decoder command, or a generation check that failed.
    The CLI prints it as one line and exits with status 2."""
