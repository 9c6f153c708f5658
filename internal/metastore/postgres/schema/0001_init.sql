-- Coffer metadata schema, version 1 (PostgreSQL). IDs are raw bytes (16 for accounts, trees and
-- nodes; 32 for blobs and hashes). Times are timestamptz (microseconds); NULL is the zero time.
-- Every table mirrors the SQLite store's (internal/metastore/sqlite/schema) so both behave alike.

CREATE TABLE accounts (
	id                  bytea       NOT NULL PRIMARY KEY CHECK (length(id) = 16),
	username            text        NOT NULL UNIQUE,
	created             timestamptz,
	kdf                 bytea,
	login_key           bytea,
	master_key          bytea,
	recovery_login_key  bytea,
	recovery_master_key bytea,
	bundle              bytea,
	bundle_gen          bigint      NOT NULL DEFAULT 0 CHECK (bundle_gen >= 0),
	public_keys         bytea,
	tree                bytea       NOT NULL CHECK (length(tree) = 16),
	quota               bigint      NOT NULL DEFAULT 0 CHECK (quota >= 0)
);

-- Blob usage per account, kept in step with the blobs table. Its row is also the lock that makes
-- AddBlob's quota check atomic.
CREATE TABLE usage (
	account bytea  NOT NULL PRIMARY KEY REFERENCES accounts (id),
	bytes   bigint NOT NULL DEFAULT 0,
	count   bigint NOT NULL DEFAULT 0
);

CREATE TABLE invites (
	code    text        NOT NULL PRIMARY KEY,
	created timestamptz,
	used_by bytea,       -- the account that consumed it; NULL while unused
	used_at timestamptz
);

CREATE TABLE login_failures (
	key  text        NOT NULL PRIMARY KEY,
	n    integer     NOT NULL CHECK (n > 0),
	last timestamptz
);

CREATE TABLE sessions (
	id         text        NOT NULL PRIMARY KEY,
	account    bytea       NOT NULL REFERENCES accounts (id),
	token_hash bytea       NOT NULL UNIQUE,
	device     text        NOT NULL,
	created    timestamptz,
	last_used  timestamptz,
	expires    timestamptz
);
CREATE INDEX sessions_account ON sessions (account, created);

CREATE TABLE trees (
	id      bytea  NOT NULL PRIMARY KEY CHECK (length(id) = 16),
	owner   bytea  NOT NULL REFERENCES accounts (id),
	version bigint NOT NULL CHECK (version >= 0),
	head    bytea  NOT NULL,
	buckets bytea  CHECK (length(buckets) = 8192) -- 256 × 32 bytes; NULL until a commit sets a bucket
);
-- Hashes do not compress: store them out of line without trying.
ALTER TABLE trees ALTER COLUMN buckets SET STORAGE EXTERNAL;

-- Live records.
CREATE TABLE nodes (
	tree    bytea    NOT NULL REFERENCES trees (id),
	node    bytea    NOT NULL CHECK (length(node) = 16),
	parent  bytea    NOT NULL CHECK (length(parent) = 16),
	kind    smallint NOT NULL CHECK (kind BETWEEN 0 AND 255),
	version bigint   NOT NULL CHECK (version >= 0),
	hash    bytea    NOT NULL CHECK (length(hash) = 32),
	record  bytea    NOT NULL,
	PRIMARY KEY (tree, node)
);
CREATE INDEX nodes_children ON nodes (tree, parent, node);
-- Records are ciphertext: compression only costs CPU.
ALTER TABLE nodes ALTER COLUMN record SET STORAGE EXTERNAL;

-- Kept older records of live file nodes.
CREATE TABLE history (
	tree    bytea    NOT NULL,
	node    bytea    NOT NULL,
	version bigint   NOT NULL,
	kind    smallint NOT NULL,
	hash    bytea    NOT NULL,
	record  bytea    NOT NULL,
	PRIMARY KEY (tree, node, version)
);
ALTER TABLE history ALTER COLUMN record SET STORAGE EXTERNAL;

CREATE TABLE blobs (
	id      bytea       NOT NULL PRIMARY KEY CHECK (length(id) = 32),
	owner   bytea       NOT NULL REFERENCES accounts (id),
	size    bigint      NOT NULL CHECK (size >= 0),
	created timestamptz NOT NULL,
	refs    bigint      NOT NULL DEFAULT 0 -- rows in node_blobs naming this blob (maintained by triggers)
);
-- Garbage-collection candidates: unreferenced blobs by age.
CREATE INDEX blobs_unreferenced ON blobs (created, id) WHERE refs = 0;

-- Which record (live or kept) references which blob.
CREATE TABLE node_blobs (
	tree    bytea  NOT NULL,
	node    bytea  NOT NULL,
	version bigint NOT NULL,
	blob    bytea  NOT NULL REFERENCES blobs (id),
	PRIMARY KEY (tree, node, version, blob)
);
CREATE INDEX node_blobs_blob ON node_blobs (blob);

-- blobs.refs follows node_blobs: one UPDATE per distinct blob per statement (transition tables),
-- not one per row. Updating the blob row is also what makes a concurrent garbage collection
-- re-check it (see CollectableBlobs).
CREATE FUNCTION coffer_node_blobs_ref() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE blobs b SET refs = b.refs + d.n
	FROM (SELECT blob, count(*) AS n FROM node_blobs_new GROUP BY blob) d
	WHERE b.id = d.blob;
	RETURN NULL;
END
$$;
CREATE FUNCTION coffer_node_blobs_unref() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE blobs b SET refs = b.refs - d.n
	FROM (SELECT blob, count(*) AS n FROM node_blobs_old GROUP BY blob) d
	WHERE b.id = d.blob;
	RETURN NULL;
END
$$;
CREATE TRIGGER node_blobs_ref AFTER INSERT ON node_blobs
	REFERENCING NEW TABLE AS node_blobs_new FOR EACH STATEMENT EXECUTE FUNCTION coffer_node_blobs_ref();
CREATE TRIGGER node_blobs_unref AFTER DELETE ON node_blobs
	REFERENCING OLD TABLE AS node_blobs_old FOR EACH STATEMENT EXECUTE FUNCTION coffer_node_blobs_unref();

-- Folder summaries, grouped into buckets by the folder ID's first byte.
CREATE TABLE folders (
	tree   bytea    NOT NULL,
	folder bytea    NOT NULL,
	bucket smallint NOT NULL,
	count  bigint   NOT NULL,
	root   bytea    NOT NULL,
	PRIMARY KEY (tree, folder)
);
CREATE INDEX folders_bucket ON folders (tree, bucket, folder);

CREATE TABLE changes (
	account bytea  NOT NULL,
	seq     bigint NOT NULL,
	tree    bytea  NOT NULL,
	version bigint NOT NULL,
	head    bytea  NOT NULL,
	ops     bytea  NOT NULL,
	PRIMARY KEY (account, seq)
);

-- The latest seq per account. Commit increments it right after the compare-and-swap on the tree,
-- so its row lock also serialises one account's commits (on all its trees).
CREATE TABLE account_seq (
	account bytea  NOT NULL PRIMARY KEY,
	seq     bigint NOT NULL
);
