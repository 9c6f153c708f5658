-- Shared folders (metastore.Shares). A shared tree has one roster row (the owner-signed
-- format.Roster bytes and the fields the server indexes) and one members row per account it
-- ever invited, with the member's latest invite and status.
CREATE TABLE rosters (
	tree       bytea  NOT NULL PRIMARY KEY REFERENCES trees (id),
	owner      bytea  NOT NULL REFERENCES accounts (id),
	generation bigint NOT NULL,
	epoch      bigint NOT NULL,
	roster     bytea  NOT NULL
);
CREATE INDEX rosters_owner ON rosters (owner, tree);

CREATE TABLE members (
	tree    bytea       NOT NULL REFERENCES rosters (tree),
	account bytea       NOT NULL REFERENCES accounts (id),
	role    smallint    NOT NULL,
	status  text        NOT NULL,
	epoch   bigint      NOT NULL,
	invite  bytea       NOT NULL,
	updated timestamptz NOT NULL,
	PRIMARY KEY (tree, account)
);
CREATE INDEX members_account ON members (account, tree);
