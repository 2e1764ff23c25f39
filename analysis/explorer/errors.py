"""The explorer's one exception, shared by the build (builds, jobs) and the page's reads (selectors)."""


class ExplorerError(Exception):
    """A build or a request that cannot run as asked; the message says why."""
