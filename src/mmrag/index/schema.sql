-- The embedded store's source of truth. The sparse and dense indexes next to this file
-- are derived from these tables and are brought back in line with them on open.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sources (
    source_id    TEXT PRIMARY KEY,
    path         TEXT,
    content_hash TEXT NOT NULL,
    title        TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    indexed_at   REAL NOT NULL
);

-- AUTOINCREMENT: row ids are never reused, so a derived index can never confuse a
-- deleted chunk with a new one that took its number.
CREATE TABLE IF NOT EXISTS chunks (
    row       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    source_id TEXT,
    modality  TEXT NOT NULL,
    text      TEXT NOT NULL,
    source    TEXT,
    media     TEXT,
    span      TEXT,
    metadata  TEXT NOT NULL DEFAULT '{}',
    tokens    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks(source_id);

CREATE TABLE IF NOT EXISTS vectors (
    row   INTEGER NOT NULL,
    field TEXT NOT NULL,
    vec   BLOB NOT NULL,
    PRIMARY KEY (field, row)
) WITHOUT ROWID;

-- Rows written or deleted since the last checkpoint saved the derived indexes, so that
-- opening compares only these with the saved indexes (index/reconcile.py).
CREATE TABLE IF NOT EXISTS changes (
    row INTEGER PRIMARY KEY
);
