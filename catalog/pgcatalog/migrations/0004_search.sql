-- The asset API's text query: each key folded (catalog.Fold, computed by
-- syncer: SQL's lower() is not Unicode simple folding) and, where pg_trgm
-- can be had, a trigram index over it, so that a query matching 1 % reads
-- its hits instead of every key. NULL: a row written before this
-- migration (folded at the source's next indexed commit) or a key the
-- database cannot store as text; queries read those rows and check them.
ALTER TABLE syncer_objects ADD COLUMN folded text;

-- pg_trgm is trusted (PostgreSQL 13+: a database owner may create it) and
-- part of Debian's postgresql package; without it, text queries are a scan
-- on the server, still exact.
DO $$
BEGIN
	CREATE EXTENSION IF NOT EXISTS pg_trgm;
	CREATE INDEX syncer_objects_folded ON syncer_objects USING gin (folded gin_trgm_ops) WHERE ix;
EXCEPTION WHEN OTHERS THEN
	RAISE NOTICE 'pg_trgm unavailable (%): text queries scan the source', SQLERRM;
END
$$;

-- The rows still to fold (foldOld) or that cannot be: a probe for them
-- costs nothing once there are none.
CREATE INDEX syncer_objects_unfolded ON syncer_objects (source, sk) WHERE folded IS NULL;
