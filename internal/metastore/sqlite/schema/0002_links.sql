-- Public links (metastore.Links). The record is the signed format.Link bytes; the verifier the
-- visitors' LinkAuth public key. Times are Unix nanoseconds (NULL = the zero time: never expires).
CREATE TABLE links (
	id            BLOB    NOT NULL PRIMARY KEY,
	owner         BLOB    NOT NULL REFERENCES accounts (id),
	tree          BLOB    NOT NULL,
	node          BLOB    NOT NULL,
	record        BLOB    NOT NULL,
	verifier      BLOB    NOT NULL,
	created       INTEGER NOT NULL,
	expires       INTEGER,
	max_downloads INTEGER NOT NULL DEFAULT 0,
	downloads     INTEGER NOT NULL DEFAULT 0,
	revoked       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX links_owner ON links (owner, created);
