"""Alembic's entry point for omnizone's schema (docs/operations.md, "Database").

Run through ``omnizone server migrate`` or ``schema.upgrade(engine)``, which
pass the connection in ``config.attributes``; there is no alembic.ini."""

from alembic import context

from omnizone.server.adapters.schema import server_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run omnizone's migrations with `omnizone server migrate`")

context.configure(
    connection=connection,
    target_metadata=server_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying a table
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
