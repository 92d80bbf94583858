-- The catalog's tables. Keys are stored as the provider's sort key in
-- bytea, so that ORDER BY sk is the provider's order (byte order; the sort
-- key maps UTF-16 order onto it) whatever the database's collation.
-- Times are unix nanoseconds (bigint), exact like bbolt's; an unknown
-- LastModified is the smallest bigint, so it sorts first.

CREATE TABLE syncer_meta (
	k text PRIMARY KEY,
	v text NOT NULL
);

-- One row per source, locked by every commit of the source: the sequence
-- is this row's counter, so numbers come without gaps (a SEQUENCE would
-- lose values on rollback).
CREATE TABLE syncer_sources (
	id      text PRIMARY KEY,
	seq     bigint NOT NULL DEFAULT 0,
	objects bigint NOT NULL DEFAULT 0,
	listed  boolean NOT NULL DEFAULT false,
	indexed boolean NOT NULL DEFAULT false, -- its objects' ix: the asset API's indexes hold them
	marked  boolean NOT NULL DEFAULT false, -- it has markers (most sources never see a notification)
	resume  bytea -- NULL: no first listing in progress
);

CREATE TABLE syncer_objects (
	source  text   NOT NULL,
	sk      bytea  NOT NULL,
	seq     bigint NOT NULL,
	size    bigint NOT NULL,
	mtime   bigint NOT NULL,
	etag    text   NOT NULL,
	version text   NOT NULL,
	ctype   text   NOT NULL,
	name    bytea  NOT NULL, -- the key's last path element, for the by-name order
	ix      boolean NOT NULL, -- in the asset API's indexes (the source's assets.index)
	PRIMARY KEY (source, sk)
);

-- The asset API's sort orders, ties by key. Partial: a source without
-- assets.index pays nothing for them (a first scan's inserts cost ~30%
-- more with all three), as with bbolt, where such a source has none.
CREATE INDEX syncer_objects_mtime ON syncer_objects (source, mtime, sk) WHERE ix;
CREATE INDEX syncer_objects_size ON syncer_objects (source, size, sk) WHERE ix;
CREATE INDEX syncer_objects_name ON syncer_objects (source, name, sk) WHERE ix;

CREATE TABLE syncer_outbox (
	source  text     NOT NULL,
	seq     bigint   NOT NULL,
	op      smallint NOT NULL,
	origin  smallint NOT NULL,
	at      bigint   NOT NULL,
	key     bytea    NOT NULL,
	size    bigint   NOT NULL,
	mtime   bigint   NOT NULL,
	etag    text     NOT NULL,
	version text     NOT NULL,
	ctype   text     NOT NULL,
	PRIMARY KEY (source, seq)
);

-- The last notification applied to a key; it outlives the key.
CREATE TABLE syncer_markers (
	source text    NOT NULL,
	sk     bytea   NOT NULL,
	seq    text    NOT NULL,
	del    boolean NOT NULL,
	at     bigint  NOT NULL,
	PRIMARY KEY (source, sk)
);
