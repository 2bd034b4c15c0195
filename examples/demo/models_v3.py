"""Demo models, version 3: a column rename (data kept), a CHECK constraint, a new default."""

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "author"
    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(sa.String(120), index=True, info={"renamed_from": "name"})
    born: Mapped[int | None]
    email: Mapped[str | None] = mapped_column(sa.String(200), unique=True)


class Book(Base):
    __tablename__ = "book"
    __table_args__ = (sa.CheckConstraint("pages > 0", name="ck_book_pages_positive"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("author.id"))
    pages: Mapped[int] = mapped_column(server_default="100")
