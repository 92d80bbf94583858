-- Ownership of a source: one replica at a time holds its lease. token grows
-- with every change of owner (or re-acquisition after expiry) and fences
-- commits: a commit checks, in its own transaction, that its token is the
-- lease's and unexpired. Expiry is by the database's clock, the one clock
-- every replica shares.
CREATE TABLE syncer_leases (
	source     text        PRIMARY KEY,
	owner      text        NOT NULL,
	token      bigint      NOT NULL,
	expires_at timestamptz NOT NULL
);
