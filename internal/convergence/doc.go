// Package convergence holds syncer's convergence property test: random,
// seeded interleavings of bucket operations, scans, notifications
// (duplicated, reordered, delayed, lost) and crashes of a real worker, after
// which the catalog must equal the bucket and the published stream must
// replay to it. The package has no code of its own; see convergence_test.go.
package convergence
