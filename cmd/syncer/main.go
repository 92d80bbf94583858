// Command syncer keeps editors' asset libraries in sync with cloud buckets:
// it reconciles buckets against a durable catalog and publishes every change
// as a contents-changed event on NATS JetStream.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `syncer keeps asset libraries in sync with buckets, publishing changes to NATS.

Usage:
  syncer run [--config FILE]                 run the worker (no config: the embedded default
                                             over ./assets with an embedded NATS on :4222)
  syncer scan --config FILE --source ID      reconcile one source once, then publish its changes
  syncer events tail [--nats URL] [--source ID] [--all]
                                             print events as JSON lines
  syncer catalog ls --config FILE --source ID [--prefix P] [--limit N]
                                             list what the catalog records
  syncer catalog stats --config FILE         objects, last sequence and unpublished changes per source
  syncer config check --config FILE          validate a configuration
  syncer version                             print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code through the command functions.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = cmdRun(ctx, rest, stderr)
	case "scan":
		err = cmdScan(ctx, rest, stdout, stderr)
	case "events":
		err = sub(rest, map[string]func([]string) error{
			"tail": func(a []string) error { return cmdTail(ctx, a, stdout, stderr) },
		})
	case "catalog":
		err = sub(rest, map[string]func([]string) error{
			"ls":    func(a []string) error { return cmdCatalogLs(ctx, a, stdout, stderr) },
			"stats": func(a []string) error { return cmdCatalogStats(ctx, a, stdout, stderr) },
		})
	case "config":
		err = sub(rest, map[string]func([]string) error{
			"check": func(a []string) error { return cmdConfigCheck(a, stdout, stderr) },
		})
	case "version", "--version":
		fmt.Fprintln(stdout, "syncer", version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "syncer: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "syncer:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func sub(args []string, cmds map[string]func([]string) error) error {
	if len(args) == 0 {
		return &exitError{2, errors.New("missing subcommand; see syncer help")}
	}
	fn, ok := cmds[args[0]]
	if !ok {
		return &exitError{2, fmt.Errorf("unknown subcommand %q; see syncer help", args[0])}
	}
	return fn(args[1:])
}
