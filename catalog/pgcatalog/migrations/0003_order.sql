-- The key order a source's keys are laid out in (providers.Order's
-- String), recorded at its first open and checked at every later one.
ALTER TABLE syncer_sources ADD COLUMN korder text;
