-- Coffer metadata schema, version 1. Times are Unix nanoseconds (NULL = the zero time). IDs are
-- raw bytes (16 for accounts, trees and nodes; 32 for blobs and hashes).

CREATE TABLE accounts (
	id                  BLOB    NOT NULL PRIMARY KEY,
	username            TEXT    NOT NULL UNIQUE,
	created             INTEGER,
	kdf                 BLOB,
	login_key           BLOB,
	master_key          BLOB,
	recovery_login_key  BLOB,
	recovery_master_key BLOB,
	bundle              BLOB,
	bundle_gen          INTEGER NOT NULL DEFAULT 0,
	public_keys         BLOB,
	tree                BLOB    NOT NULL,
	quota               INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Blob usage per account, kept in step with the blobs table.
CREATE TABLE usage (
	account BLOB    NOT NULL PRIMARY KEY REFERENCES accounts (id),
	bytes   INTEGER NOT NULL DEFAULT 0,
	count   INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE TABLE invites (
	code    TEXT    NOT NULL PRIMARY KEY,
	created INTEGER,
	used_by BLOB,   -- the account that consumed it; NULL while unused
	used_at INTEGER
) STRICT;

CREATE TABLE login_failures (
	key  TEXT    NOT NULL PRIMARY KEY,
	n    INTEGER NOT NULL,
	last INTEGER
) STRICT;

CREATE TABLE sessions (
	id         TEXT    NOT NULL PRIMARY KEY,
	account    BLOB    NOT NULL REFERENCES accounts (id),
	token_hash BLOB    NOT NULL UNIQUE,
	device     TEXT    NOT NULL,
	created    INTEGER,
	last_used  INTEGER,
	expires    INTEGER
) STRICT;
CREATE INDEX sessions_account ON sessions (account, created);

CREATE TABLE trees (
	id      BLOB    NOT NULL PRIMARY KEY,
	owner   BLOB    NOT NULL REFERENCES accounts (id),
	version INTEGER NOT NULL,
	head    BLOB    NOT NULL,
	buckets BLOB    -- 256 × 32 bytes; NULL until a commit sets a bucket
) STRICT;

-- Live records.
CREATE TABLE nodes (
	tree    BLOB    NOT NULL REFERENCES trees (id),
	node    BLOB    NOT NULL,
	parent  BLOB    NOT NULL,
	kind    INTEGER NOT NULL,
	version INTEGER NOT NULL,
	hash    BLOB    NOT NULL,
	record  BLOB    NOT NULL,
	PRIMARY KEY (tree, node)
) STRICT;
CREATE INDEX nodes_children ON nodes (tree, parent, node);

-- Kept older records of live file nodes.
CREATE TABLE history (
	tree    BLOB    NOT NULL,
	node    BLOB    NOT NULL,
	version INTEGER NOT NULL,
	kind    INTEGER NOT NULL,
	hash    BLOB    NOT NULL,
	record  BLOB    NOT NULL,
	PRIMARY KEY (tree, node, version)
) STRICT;

CREATE TABLE blobs (
	id      BLOB    NOT NULL PRIMARY KEY,
	owner   BLOB    NOT NULL REFERENCES accounts (id),
	size    INTEGER NOT NULL,
	created INTEGER NOT NULL,
	refs    INTEGER NOT NULL DEFAULT 0 -- rows in node_blobs naming this blob (maintained by triggers)
) STRICT;
-- Garbage-collection candidates: unreferenced blobs by age.
CREATE INDEX blobs_unreferenced ON blobs (created, id) WHERE refs = 0;

-- Which record (live or kept) references which blob.
CREATE TABLE node_blobs (
	tree    BLOB    NOT NULL,
	node    BLOB    NOT NULL,
	version INTEGER NOT NULL,
	blob    BLOB    NOT NULL REFERENCES blobs (id),
	PRIMARY KEY (tree, node, version, blob)
) STRICT, WITHOUT ROWID;
CREATE INDEX node_blobs_blob ON node_blobs (blob);

CREATE TRIGGER node_blobs_ref AFTER INSERT ON node_blobs BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob;
END;
CREATE TRIGGER node_blobs_unref AFTER DELETE ON node_blobs BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob;
END;

-- Folder summaries, grouped into buckets by the folder ID's first byte.
CREATE TABLE folders (
	tree   BLOB    NOT NULL,
	folder BLOB    NOT NULL,
	bucket INTEGER NOT NULL,
	count  INTEGER NOT NULL,
	root   BLOB    NOT NULL,
	PRIMARY KEY (tree, folder)
) STRICT;
CREATE INDEX folders_bucket ON folders (tree, bucket, folder);

CREATE TABLE changes (
	account BLOB    NOT NULL,
	seq     INTEGER NOT NULL,
	tree    BLOB    NOT NULL,
	version INTEGER NOT NULL,
	head    BLOB    NOT NULL,
	ops     BLOB    NOT NULL,
	PRIMARY KEY (account, seq)
) STRICT;

CREATE TABLE account_seq (
	account BLOB    NOT NULL PRIMARY KEY,
	seq     INTEGER NOT NULL
) STRICT;
