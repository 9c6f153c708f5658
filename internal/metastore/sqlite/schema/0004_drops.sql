-- Upload-only links (metastore.Drops): upload limits on links, pending drops and their blobs.
ALTER TABLE links ADD COLUMN max_uploads INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN uploads INTEGER NOT NULL DEFAULT 0;

-- A drop is an anonymous upload (format.Drop bytes, encrypted to the owner) until the owner
-- imports or discards it. Times are Unix nanoseconds.
CREATE TABLE drops (
	seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	id      BLOB    NOT NULL UNIQUE,
	link    BLOB    NOT NULL REFERENCES links (id),
	owner   BLOB    NOT NULL REFERENCES accounts (id),
	record  BLOB    NOT NULL,
	created INTEGER NOT NULL
) STRICT;
CREATE INDEX drops_owner ON drops (owner, seq);

-- The blobs of pending drops: they hold a reference (blobs.refs) so that GC keeps them.
CREATE TABLE drop_blobs (
	drop_id BLOB NOT NULL REFERENCES drops (id) ON DELETE CASCADE,
	blob    BLOB NOT NULL REFERENCES blobs (id),
	PRIMARY KEY (drop_id, blob)
) STRICT;
CREATE INDEX drop_blobs_blob ON drop_blobs (blob);
CREATE TRIGGER drop_blobs_ref AFTER INSERT ON drop_blobs BEGIN
	UPDATE blobs SET refs = refs + 1 WHERE id = NEW.blob;
END;
CREATE TRIGGER drop_blobs_unref AFTER DELETE ON drop_blobs BEGIN
	UPDATE blobs SET refs = refs - 1 WHERE id = OLD.blob;
END;
