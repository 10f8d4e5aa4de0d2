"""A plain INSERT of many rows through the views' cursor (by COPY on PostgreSQL) stores exactly the rows one
INSERT per row stores, on SQLite and PostgreSQL: floats bound for REAL columns (among them midpoints between two
float4 values, where reading the float's text as a real and casting the double round differently), text with
tabs, newlines, backslashes and quotes, NULLs, integers in REAL and TEXT columns; and a bad row stores none."""

from __future__ import annotations

import pytest

from infra.views import open_views

COLUMNS = "journey_id, version, minutes, hours, note, corrects"
DDL = ("CREATE TABLE {0} (journey_id TEXT NOT NULL, version BIGINT NOT NULL, minutes REAL NOT NULL, hours REAL,"
       " note TEXT, corrects BIGINT, PRIMARY KEY (journey_id, version))")
ROWS = [
    ("j-1", 1, 180.0, 9.0, "plain", None),
    ("j-1", 2, 47.3, None, "tab\there, newline\nthere, back\\slash, 'quote' \"double\"", 1),
    ("j-2", 1, 93.86864852905273, 28.35719394683838, None, None),  # float4 midpoints: text and cast differ
    ("j-2", 2, 228.76993560791016, 1 / 3, "é中😀 \\N", 2),
    ("j-3", 1, 45, 20, 7, None),  # integers where a float and a text go
    ("j-3", 2, 1e-7, 3.4e38, "", None),
]


def _stored(wired, table):
    with wired.views.transaction() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM {table} ORDER BY journey_id, version")
        return cursor.fetchall()


def test_many_rows_at_once_store_what_one_insert_a_row_stores(wired):
    with wired.views.transaction() as cursor:
        for table in ("one_by_one", "all_at_once"):
            cursor.execute(DDL.format(table))
        for row in ROWS:
            cursor.execute(f"INSERT INTO one_by_one ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row)
        cursor.executemany(f"INSERT INTO all_at_once ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", ROWS)
    one_by_one, all_at_once = _stored(wired, "one_by_one"), _stored(wired, "all_at_once")
    assert len(all_at_once) == len(ROWS)
    assert all_at_once == one_by_one
    assert [type(value) for value in all_at_once[4]] == [type(value) for value in one_by_one[4]]


def test_a_bad_row_among_many_stores_none_of_them(wired):
    with wired.views.transaction() as cursor:
        cursor.execute(DDL.format("kept"))
    with pytest.raises(Exception), wired.views.transaction() as cursor:  # noqa: B017 - the driver's integrity error
        cursor.executemany(f"INSERT INTO kept ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", [*ROWS, ROWS[0]])
    assert _stored(wired, "kept") == []


def test_a_table_made_after_a_first_copy_in_the_same_transaction_stores_its_reals_alike(wired):
    # the REAL columns are looked up once a transaction, and again after a table is made, changed or dropped in it
    with wired.views.transaction() as cursor:
        cursor.execute(DDL.format("first"))
        cursor.executemany(f"INSERT INTO first ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", ROWS)
        cursor.execute(DDL.format("made_after"))
        cursor.execute("CREATE TABLE reals_later (journey_id TEXT NOT NULL, minutes DOUBLE PRECISION)")
        cursor.executemany("INSERT INTO reals_later (journey_id, minutes) VALUES (?, ?)", [(row[0], row[2]) for row in ROWS])
        cursor.execute("DROP TABLE reals_later")
        cursor.execute("CREATE TABLE reals_later (journey_id TEXT NOT NULL, minutes REAL)")  # the same name, now REAL
        for row in ROWS:
            cursor.execute(f"INSERT INTO made_after ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row)
        cursor.executemany(f"INSERT INTO first ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                           [(f"again-{journey}", *rest) for journey, *rest in ROWS])
        cursor.executemany("INSERT INTO reals_later (journey_id, minutes) VALUES (?, ?)", [(row[0], row[2]) for row in ROWS])
        cursor.execute("SELECT journey_id, minutes FROM reals_later ORDER BY journey_id, minutes")
        later = cursor.fetchall()
    made_after = _stored(wired, "made_after")
    assert [row[2:] for row in _stored(wired, "first") if row[0].startswith("again-")] == [row[2:] for row in made_after]
    assert sorted((row[0], row[2]) for row in made_after) == later


def test_each_transaction_finds_the_real_columns_of_the_table_as_it_is_then(wired):
    """A table copied into, then dropped and made again with REAL columns by another process's connection: the next
    transaction's copy rounds its floats as the REAL columns store one INSERT a row's."""
    minutes = [(row[0] + f"-{row[1]}", row[2]) for row in ROWS]
    with wired.views.transaction() as cursor:
        cursor.execute("CREATE TABLE remade (journey_id TEXT NOT NULL, minutes DOUBLE PRECISION)")
        cursor.execute("CREATE TABLE one_a_row (journey_id TEXT NOT NULL, minutes REAL)")
    with wired.views.transaction() as cursor:
        cursor.executemany("INSERT INTO remade (journey_id, minutes) VALUES (?, ?)", minutes)
        cursor.execute("SELECT minutes FROM remade ORDER BY journey_id")
        assert [row[0] for row in cursor.fetchall()] == [float(value) for _, value in sorted(minutes)]  # doubles, as given
    other = open_views(wired.database)
    try:
        with other.transaction() as cursor:
            cursor.execute("DROP TABLE remade")
            cursor.execute("CREATE TABLE remade (journey_id TEXT NOT NULL, minutes REAL)")
    finally:
        other.close()
    with wired.views.transaction() as cursor:
        cursor.executemany("INSERT INTO remade (journey_id, minutes) VALUES (?, ?)", minutes)
        for row in minutes:
            cursor.execute("INSERT INTO one_a_row (journey_id, minutes) VALUES (?, ?)", row)
    with wired.views.transaction() as cursor:
        cursor.execute("SELECT journey_id, minutes FROM remade ORDER BY journey_id")
        remade = cursor.fetchall()
        cursor.execute("SELECT journey_id, minutes FROM one_a_row ORDER BY journey_id")
        assert remade == cursor.fetchall()
    assert len(remade) == len(ROWS)
