-- Head history and head gossip (metastore.HeadHistory). Every commit's head is already kept in
-- the change feed; this index serves a tree's heads by version.
CREATE INDEX changes_tree_version ON changes (tree, version);

-- The latest head each session published for a tree (PUT /v1/trees/{tree}/seen).
CREATE TABLE seen_heads (
	tree      bytea       NOT NULL,
	session   text        NOT NULL,
	device    text        NOT NULL,
	version   bigint      NOT NULL,
	head      bytea       NOT NULL,
	published timestamptz NOT NULL,
	PRIMARY KEY (tree, session)
);
CREATE INDEX seen_heads_published ON seen_heads (tree, published);
