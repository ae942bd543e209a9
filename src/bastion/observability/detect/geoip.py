"""Country of an IP address from a MaxMind-format database (read with ``maxminddb``), offline.

The bundled database is the one the ``python-geoacumen`` package ships (an open IP-to-country
database, Apache-2.0); ``monitoring.detectors.new_country.database`` names any other file in the
MaxMind DB format (GeoLite2-Country, DB-IP lite, ...). Nothing is ever downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import maxminddb

from bastion.errors import ConfigError

FIELD = "monitoring.detectors.new_country.database"


class CountryLookup(Protocol):
    """ISO 3166 country code of an address, or ``None`` (private, reserved, unknown)."""

    def country(self, ip: str) -> str | None: ...


def bundled_database() -> Path | None:
    """The database shipped by ``python-geoacumen``, when that package is installed."""
    try:
        import geoacumen
    except ImportError:
        return None
    path = Path(geoacumen.db_path)
    return path if path.is_file() else None


class MaxMindCountries:
    """A MaxMind DB reader (memory-mapped when the C extension is there)."""

    def __init__(self, path: Path) -> None:
        try:
            self._reader: Any = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(
                f"{FIELD}: {str(path)!r} could not be opened as a MaxMind DB file "
                f"({type(exc).__name__}); expected a country database in the MaxMind DB format"
            ) from exc
        self.path = path
        meta = self._reader.metadata()
        self.description = str(meta.database_type)
        self.build_epoch = int(meta.build_epoch)

    def country(self, ip: str) -> str | None:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        for field in ("country", "registered_country"):
            place = record.get(field)
            if isinstance(place, dict):
                code = place.get("iso_code")
                # Some databases mark reserved ranges with placeholders (the bundled one says
                # "None"): only a two-letter code is a country.
                if isinstance(code, str) and len(code) == 2 and code.isalpha():
                    return code.upper()
        return None

    def close(self) -> None:
        self._reader.close()


def open_countries(path: Path | None) -> MaxMindCountries:
    """The configured database, else the bundled one; a :class:`ConfigError` naming the field
    when neither is there."""
    if path is None:
        path = bundled_database()
        if path is None:
            raise ConfigError(
                f"{FIELD} is not set and the bundled database (package python-geoacumen) is "
                "not installed; expected a MaxMind-format country database file, or "
                "new_country.enabled: false"
            )
    elif not path.is_file():
        raise ConfigError(f"{FIELD}: {str(path)!r} does not exist; expected a MaxMind DB file")
    return MaxMindCountries(path)
