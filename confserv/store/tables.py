"""The Configuration Database schema, in SQLModel: one schema for SQLite and PostgreSQL.

Tables:
    cfg_object   every configuration object; its fields and options as JSON text
    cfg_counter  the last serial, and per type the last dbid (ids are never reused)
    cfg_history  the History Log: one row per committed change, with serial and epoch
    cfg_lease    the database's one lease (row ``database``: epoch, holder Application and
                 instance, expiry by the database clock, where the holder serves),
                 one claim per running server process (rows ``app:<Application>``),
                 and the supervisors' lease (row ``supervisor``: its own epoch, the
                 active supervisor and its control address, made at the first take)
    cfg_meta     the database's identity (``uuid``, given by ``cfgctl init``)

Only ``cfgctl init`` creates these tables (compiled DDL for each engine) or
upgrades an older schema; a server refuses a database without them. Queries
are plain SQL over these columns.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, Text, UniqueConstraint
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import Field, SQLModel

#: Version of this schema, kept in cfg_counter under ``schema``.
SCHEMA_VERSION = 2


class CfgObject(SQLModel, table=True):
    """One configuration object."""

    __tablename__ = "cfg_object"
    __table_args__ = (UniqueConstraint("type", "name", name="cfg_object_type_name"),)

    type: str = Field(sa_column=Column(Text, primary_key=True))
    dbid: int = Field(sa_column=Column(Integer, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    data: str = Field(sa_column=Column(Text, nullable=False))


class CfgCounter(SQLModel, table=True):
    """A named counter: ``serial``, ``schema``, ``dbid:<Type>``."""

    __tablename__ = "cfg_counter"

    name: str = Field(sa_column=Column(Text, primary_key=True))
    value: int = Field(sa_column=Column(BigInteger, nullable=False))


class CfgHistory(SQLModel, table=True):
    """One committed change (Genesys' History Log record)."""

    __tablename__ = "cfg_history"

    serial: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    op: str = Field(sa_column=Column(Text, nullable=False))
    type: str = Field(sa_column=Column(Text, nullable=False))
    dbid: int = Field(sa_column=Column(Integer, nullable=False))
    change: str = Field(sa_column=Column(Text, nullable=False))
    time: float = Field(sa_column=Column(Float, nullable=False, index=True))


class CfgLease(SQLModel, table=True):
    """The database's lease (the epoch is the fencing token), and per-process claims."""

    __tablename__ = "cfg_lease"

    name: str = Field(sa_column=Column(Text, primary_key=True))
    epoch: int = Field(sa_column=Column(BigInteger, nullable=False))
    holder: str = Field(sa_column=Column(Text, nullable=False))
    instance: str = Field(sa_column=Column(Text, nullable=False, server_default=""))
    expires_at: float = Field(sa_column=Column(Float, nullable=False))
    address: str = Field(sa_column=Column(Text, nullable=False, server_default=""))


class CfgMeta(SQLModel, table=True):
    """Facts about the database itself: ``uuid`` (its identity)."""

    __tablename__ = "cfg_meta"

    name: str = Field(sa_column=Column(Text, primary_key=True))
    value: str = Field(sa_column=Column(Text, nullable=False))


TABLES = (CfgObject, CfgCounter, CfgHistory, CfgLease, CfgMeta)


def ddl(engine: str, only: tuple[type[SQLModel], ...] = TABLES) -> list[str]:
    """``CREATE TABLE/INDEX IF NOT EXISTS`` statements for ``sqlite`` or ``postgre``."""
    dialect = postgresql.dialect() if engine == "postgre" else sqlite.dialect()  # type: ignore[no-untyped-call]
    out: list[str] = []
    for model in only:
        table = SQLModel.metadata.tables[str(model.__tablename__)]
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    return out
