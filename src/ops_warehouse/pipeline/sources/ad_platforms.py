"""The ad platforms behind the marketing source's ``ad_performance`` and ``campaigns``
(``OPS_AD_PLATFORMS``): the generic marketing API, Google Ads, Meta Ads, several at once.

Each platform adapter (``google_ads``, ``meta_ads``) reads its own accounts and yields contract
rows (what they share is ``ad_rows``); this module chains the platforms the settings name into
one reader per entity. With ``generic`` named beside platforms, the generic API's rows of the
platforms' channels are left out: each channel comes from one place.

Each platform keeps its own look-back state (``last_date``) under its name inside the
entity's state, so a platform added later reads its whole history on its first load while
the others re-read only their look-back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.compute as pc

from ops_warehouse.pipeline.contracts import Entity
from ops_warehouse.pipeline.sources import mapping
from ops_warehouse.pipeline.sources.arrow_rows import Batch
from ops_warehouse.pipeline.sources.window import Window
from ops_warehouse.settings import Settings

Reader = Callable[[Entity, dict, Window], Iterator[Batch]]


def _without(batch: Batch, channels: list[str]) -> Batch:
    """The batch less its rows of ``channels`` (a platform named beside ``generic`` serves
    them: each channel comes from one place)."""
    served = pc.is_in(batch.table["channel"], value_set=pa.array(channels, pa.string()))
    return Batch(batch.table.filter(pc.invert(pc.fill_null(served, False))), batch.quarantined)


def read_each(platforms: list[tuple[str, dict[str, Reader]]], name: str) -> Reader:
    """One entity's reader over every platform, each with its own state."""
    channels = [platform for platform, _ in platforms if platform != "generic"]

    def read(entity: Entity, state: dict, window: Window) -> Iterator[Batch]:
        for platform, readers in platforms:
            if platform == "generic":
                for batch in readers[name](entity, state, window):
                    yield _without(batch, channels)
            else:
                yield from readers[name](entity, state.setdefault(platform, {}), window)

    return read


def readers(settings: Settings, stack: ExitStack, generic: dict[str, Reader]) -> dict[str, Reader]:
    """``ad_performance`` and ``campaigns`` over the platforms of ``OPS_AD_PLATFORMS``; the
    mapping file is validated and each platform's credentials checked here, before any
    request. ``generic``: the generic marketing API's readers."""
    generic = dict(generic)  # the caller's dict is about to take these readers' place
    config = mapping.load(settings.mapping_file)
    platforms: list[tuple[str, dict[str, Reader]]] = []
    formats: dict[str, str] = {}
    for name in settings.ad_platforms:
        if name == "generic":
            platforms.append((name, generic))
            continue
        if name == "google_ads":
            from ops_warehouse.pipeline.sources import google_ads as module
        else:
            from ops_warehouse.pipeline.sources import meta_ads as module  # type: ignore[no-redef]
        section = config.section(name)
        formats[name] = section["campaign_id_format"]
        platforms.append((name, module.readers(settings, stack, section)))
    if len(set(formats.values())) < len(formats):
        raise mapping.MappingError(
            "mapping file: google_ads.campaign_id_format and meta_ads.campaign_id_format are "
            f"the same ({next(iter(formats.values()))!r}): campaign ids must stay unique across "
            "platforms, give each its own text around {id}"
        )
    return {name: read_each(platforms, name) for name in ("ad_performance", "campaigns")}
