-- Placeholder so that 0005_heads.sql applies on the fork branch; the real 0003 comes from another
-- branch. DELETE THIS FILE when merging with it.
SELECT 1;
