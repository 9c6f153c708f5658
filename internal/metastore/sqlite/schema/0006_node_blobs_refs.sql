-- blobs.refs is raised by the commit itself, once per blob and commit (by the number of
-- node_blobs rows it inserted for that blob), instead of by a trigger once per inserted row: a
-- folder put of 50 files in one packed blob updated that blob's row 50 times inside the single
-- writer's transaction. Deleting node_blobs rows still lowers refs through node_blobs_unref.
DROP TRIGGER node_blobs_ref;
