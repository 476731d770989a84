"""Errors a data engineer can act on: each names the source, entity, field or setting involved."""


class OpsWarehouseError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class SourceConfigError(OpsWarehouseError):
    """A source rejected our configuration (wrong token, bad URL): retrying cannot help."""


class SourceSchemaError(OpsWarehouseError):
    """A source stopped serving a field the contract requires (missing or renamed)."""


class SourceDataError(OpsWarehouseError):
    """A source served a value that cannot be read as the contract's type."""


class SourceUnavailableError(OpsWarehouseError):
    """A source could not be reached even after retries."""


class PublishError(OpsWarehouseError):
    """The working warehouse cannot be published (nothing was changed for readers)."""
