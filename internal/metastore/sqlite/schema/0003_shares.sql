-- Placeholder for the shared-folders migration (developed on another branch, which replaces
-- this file when merged). Migration versions must have no gaps.
SELECT 1;
