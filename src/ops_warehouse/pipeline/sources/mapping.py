"""The deployment's mapping file: what the source systems do not hold, and how their values
become the contract's (docs/sources.md, "Vendor systems and the mapping file").

One YAML file per deployment (``OPS_MAPPING_FILE``; the demo's is
``config/mapping.demo.yml``). Each top-level key is a section that one adapter reads:
``zendesk``, ``shopify``, ``shop_sql``, and those of the marketing adapters. The file is
read and validated once, when a load starts: an unknown section, an unknown key or a value
of the wrong kind stops the load before any request, with an error that names the file and
the key's full path (``zendesk.agents.hourly_cost.default``).

Adapters describe their section as a :class:`Section` of typed keys; nested sections and
free-form maps (``{source value: contract value}``) are both expressible. A section
absent from the file is empty: each adapter says which of its keys are required.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

from ops_warehouse.errors import SourceConfigError


class MappingError(SourceConfigError):
    """The mapping file is missing, unreadable or has a key with a wrong or missing value."""


Check = Callable[[Any, str], Any]  # (value, key path) -> parsed value; raises MappingError


def _fail(path: str, what: str, value: Any) -> MappingError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MappingError(f"mapping file: {path} must be {what}, not {shown}")


def text(value: Any, path: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _fail(path, "a non-empty text", value)


def one_of(*allowed: str) -> Check:
    def check(value: Any, path: str) -> str:
        if value in allowed:
            return value
        raise _fail(path, "one of " + ", ".join(allowed), value)

    return check


def decimal(minimum: Decimal | None = Decimal(0)) -> Check:
    def check(value: Any, path: str) -> Decimal:
        if isinstance(value, bool):
            raise _fail(path, "a number", value)
        try:
            number = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise _fail(path, "a number", value) from None
        if not number.is_finite() or (minimum is not None and number < minimum):
            raise _fail(path, f"a finite number >= {minimum}", value)
        return number

    return check


def integer(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise _fail(path, "a whole number", value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise _fail(path, "a whole number", value) from None


def boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail(path, "true or false", value)


def currency(value: Any, path: str) -> str:
    """A currency the contract knows (contracts.CURRENCIES)."""
    from ops_warehouse.pipeline.contracts import CURRENCIES

    if value in CURRENCIES:
        return value
    raise _fail(path, "a currency of the contract (" + ", ".join(CURRENCIES) + ")", value)


def mapping_of(key: Check, value: Check) -> Check:
    """A free-form map: every key and value checked."""

    def check(raw: Any, path: str) -> dict:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            raise _fail(path, "a map of key: value", raw)
        return {key(k, f"{path}.{k}"): value(v, f"{path}.{k}") for k, v in raw.items()}

    return check


def list_of(item: Check) -> Check:
    def check(raw: Any, path: str) -> list:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise _fail(path, "a list", raw)
        return [item(v, f"{path}[{i}]") for i, v in enumerate(raw)]

    return check


@dataclass(frozen=True)
class Key:
    check: Check
    required: bool = False
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class Section:
    """A map with known keys: each checked, unknown keys refused."""

    keys: Mapping[str, Key | Section]
    doc: str = ""

    def parse(self, raw: Any, path: str) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise _fail(path, "a map of key: value", raw)
        unknown = sorted(set(map(str, raw)) - set(self.keys))
        if unknown:
            raise MappingError(
                f"mapping file: {path}.{unknown[0]} is not a known key "
                f"(known under {path}: {', '.join(sorted(self.keys))})"
            )
        out: dict[str, Any] = {}
        for name, spec in self.keys.items():
            where = f"{path}.{name}"
            if isinstance(spec, Section):
                out[name] = spec.parse(raw.get(name), where)
            elif name in raw and raw[name] is not None:
                out[name] = spec.check(raw[name], where)
            elif spec.required:
                raise MappingError(f"mapping file: {where} is required ({spec.doc})")
            else:
                out[name] = spec.default
        return out

    def __call__(self, raw: Any, path: str) -> dict[str, Any]:
        return self.parse(raw, path)


# Every adapter registers its section here when its module is imported.
SECTIONS: dict[str, Section] = {}


def register(name: str, section: Section) -> Section:
    SECTIONS[name] = section
    return section


def _import_adapters() -> None:
    """Import every adapter module, so each has registered its section."""
    import importlib
    import pkgutil

    import ops_warehouse.pipeline.sources as sources

    for module in pkgutil.iter_modules(sources.__path__):
        importlib.import_module(f"{sources.__name__}.{module.name}")


@dataclass(frozen=True)
class MappingFile:
    path: Path | None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """A section's parsed values (defaults when the file does not have it)."""
        if name in self.sections:
            return self.sections[name]
        return SECTIONS[name].parse(None, name)


def parse(raw: Any, path: Path | None = None) -> MappingFile:
    """Validate the whole file's content (already read from YAML)."""
    _import_adapters()
    where = f"mapping file {path}" if path else "mapping file"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise MappingError(f"{where}: the top level must be a map of sections")
    unknown = sorted(set(map(str, raw)) - set(SECTIONS))
    if unknown:
        raise MappingError(
            f"{where}: {unknown[0]} is not a known section (known: {', '.join(sorted(SECTIONS))})"
        )
    try:
        sections = {name: SECTIONS[name].parse(raw[name], name) for name in raw}
    except MappingError as exc:
        raise MappingError(str(exc).replace("mapping file:", f"{where}:", 1)) from None
    return MappingFile(path, sections)


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> MappingFile:
    import yaml

    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"mapping file {file} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise MappingError(f"mapping file {file} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise MappingError(f"mapping file {file} is not valid YAML{line}") from None
    return parse(raw, file)


def load(path: Path | None) -> MappingFile:
    """The mapping file at ``path`` (``OPS_MAPPING_FILE``), validated; empty when unset."""
    if path is None:
        return parse(None)
    if not path.is_file():
        raise MappingError(
            f"mapping file {path} does not exist (OPS_MAPPING_FILE names it): create it, "
            "or unset OPS_MAPPING_FILE to read the generic source contract only"
        )
    return _load(str(path), path.stat().st_mtime_ns)
