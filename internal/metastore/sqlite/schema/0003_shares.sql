-- Shared folders (metastore.Shares). A shared tree has one roster row (the owner-signed
-- format.Roster bytes and the fields the server indexes) and one members row per account it
-- ever invited, with the member's latest invite and status. updated is Unix nanoseconds.
CREATE TABLE rosters (
	tree       BLOB    NOT NULL PRIMARY KEY REFERENCES trees (id),
	owner      BLOB    NOT NULL REFERENCES accounts (id),
	generation INTEGER NOT NULL,
	epoch      INTEGER NOT NULL,
	roster     BLOB    NOT NULL
) STRICT;
CREATE INDEX rosters_owner ON rosters (owner, tree);

CREATE TABLE members (
	tree    BLOB    NOT NULL REFERENCES rosters (tree),
	account BLOB    NOT NULL REFERENCES accounts (id),
	role    INTEGER NOT NULL,
	status  TEXT    NOT NULL,
	epoch   INTEGER NOT NULL,
	invite  BLOB    NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (tree, account)
) STRICT;
CREATE INDEX members_account ON members (account, tree);
