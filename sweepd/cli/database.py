"""Commands on the database: `db upgrade`."""

from __future__ import annotations

from sweepd.cli.options import DbOption
from sweepd.cli.output import console


def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the database schema to this sweepd's newest migration."""
    from sweepd.store.db import current_revision, head_revision, make_engine, upgrade

    engine = make_engine(db)
    before = current_revision(engine)
    upgrade(engine)
    console.print(f"database {engine.url.render_as_string(hide_password=True)}: "
                  f"{before or 'empty'} -> {head_revision()}")
