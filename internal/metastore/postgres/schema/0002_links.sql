-- Public links (metastore.Links). The record is the signed format.Link bytes; the verifier the
-- visitors' LinkAuth public key. expires NULL = never.
CREATE TABLE links (
	id            bytea       NOT NULL PRIMARY KEY,
	owner         bytea       NOT NULL REFERENCES accounts (id),
	tree          bytea       NOT NULL,
	node          bytea       NOT NULL,
	record        bytea       NOT NULL,
	verifier      bytea       NOT NULL,
	created       timestamptz NOT NULL,
	expires       timestamptz,
	max_downloads bigint      NOT NULL DEFAULT 0,
	downloads     bigint      NOT NULL DEFAULT 0,
	revoked       boolean     NOT NULL DEFAULT false
);
CREATE INDEX links_owner ON links (owner, created);
