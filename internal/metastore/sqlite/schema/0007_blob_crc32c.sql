-- The CRC-32C (Castagnoli) of each blob's bytes, as the server verified it while storing them
-- (the upload's Coffer-CRC32C header): fsck checks the stored bytes against it, whatever the
-- blob's ID is derived from. NULL for blobs recorded before this column existed.
ALTER TABLE blobs ADD COLUMN crc32c INTEGER CHECK (crc32c BETWEEN 0 AND 4294967295);
