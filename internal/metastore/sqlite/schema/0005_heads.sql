-- Head history and head gossip (metastore.HeadHistory). Every commit's head is already kept in
-- the change feed; this index serves a tree's heads by version.
CREATE INDEX changes_tree_version ON changes (tree, version);

-- The latest head each session published for a tree (PUT /v1/trees/{tree}/seen). Published is
-- Unix nanoseconds.
CREATE TABLE seen_heads (
	tree      BLOB    NOT NULL,
	session   TEXT    NOT NULL,
	device    TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	head      BLOB    NOT NULL,
	published INTEGER NOT NULL,
	PRIMARY KEY (tree, session)
) STRICT;
CREATE INDEX seen_heads_published ON seen_heads (tree, published);
