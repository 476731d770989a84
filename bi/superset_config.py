"""Superset's configuration for the published warehouse (`make bi`; bi/server.py passes it
as SUPERSET_CONFIG_PATH to every Superset command it runs).

Superset runs in its own environment (bi/superset/.venv: it pins SQLAlchemy < 2). From this
project it imports only ``ops_warehouse.settings`` (where its files live) and
``ops_warehouse.warehouse.readers``, which registers the ``duckdb+published://`` URL the
warehouse is connected through: every connection opens the published file as it is now, so
Superset answers from the latest publish even while its threads overlap queries.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ops_warehouse.settings import get_settings  # noqa: E402
from ops_warehouse.warehouse import readers  # noqa: E402, F401 - registers duckdb+published://

_home = get_settings().home / "superset"

# Superset's own metadata (users, dashboards, charts): a SQLite file beside the warehouse, or
# SUPERSET_DATABASE_URI (the compose stack: its PostgreSQL database `superset`)
SQLALCHEMY_DATABASE_URI = os.environ.get("SUPERSET_DATABASE_URI") or (
    f"sqlite:///{_home / 'superset.db'}"
)
# SUPERSET_SECRET_KEY (compose: from .env), else the file bi/server.py writes once (mode 600)
SECRET_KEY = os.environ.get("SUPERSET_SECRET_KEY") or (_home / "secret_key").read_text().strip()

# No chart data cache: a cached answer would outlive the publish that replaced it. Queries of
# the marts take milliseconds (BENCHMARKS.md, "BI").
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}

# one machine, no Celery: charts are queried synchronously by the web server's threads
FEATURE_FLAGS = {"GLOBAL_ASYNC_QUERIES": False, "THUMBNAILS": False, "ALERT_REPORTS": False}
SUPERSET_LOAD_EXAMPLES = False
