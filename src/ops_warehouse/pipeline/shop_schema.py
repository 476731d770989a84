"""The shop database's tables (sales source) as SQLAlchemy Core metadata, built from the contract.

The demo world creates these tables (SQLite or PostgreSQL); the sales loader queries them.
"""

from __future__ import annotations

import sqlalchemy as sa

from ops_warehouse.pipeline.contracts import entities_of

_SA_TYPES = {
    "text": lambda: sa.String(),
    "int": lambda: sa.BigInteger(),
    "decimal": lambda: sa.Numeric(14, 2),
    "float": lambda: sa.Float(),
    "date": lambda: sa.Date(),
    "timestamp": lambda: sa.DateTime(timezone=True),
    "bool": lambda: sa.Boolean(),
}

metadata = sa.MetaData()

for _entity in entities_of("sales"):
    sa.Table(
        _entity.name,
        metadata,
        *[
            sa.Column(
                f.name,
                _SA_TYPES[f.type](),
                primary_key=f.name in _entity.primary_key,
                nullable=f.nullable,
            )
            for f in _entity.fields
        ],
        *(
            [sa.Index(f"ix_{_entity.name}_{_entity.cursor}", _entity.cursor)]
            if _entity.cursor
            else []
        ),
    )


def table(name: str) -> sa.Table:
    return metadata.tables[name]
