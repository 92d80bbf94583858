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
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/imgly/syncer/internal/buildinfo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake in how the command was called: exit 2 with a
// pointer to the command's help, unlike a failure while running (exit 1).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// run executes the command line args and returns the exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	// Every line gets the prefix, so a validation error listing several
	// problems still reads as syncer's, one problem per line.
	for line := range strings.SplitSeq(strings.TrimRight(err.Error(), "\n"), "\n") {
		fmt.Fprintln(stderr, "syncer:", line)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "See '%s --help'.\n", cmd.CommandPath())
		return 2
	}
	return 1
}

// newRoot builds the command tree, writing to stdout and stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "syncer",
		Short: "Keep asset libraries in sync with buckets, publishing changes to NATS",
		Long: `syncer reconciles cloud buckets (S3, GCS, Azure Blob) and local directories against a durable
catalog and publishes every change as a contents-changed CloudEvent on NATS JetStream.`,
		Example: `  # the embedded default: watch ./assets, embedded NATS on 127.0.0.1:4222
  syncer run
  # in a second terminal: follow the events
  syncer events tail
  # a worker from a config file
  syncer run --config syncer.yaml`,
		Version:       buildinfo.Read().String(),
		SilenceErrors: true, // run prints the one line itself
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing command")
			}
			return unknownCommand(c, args[0])
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("syncer {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.SetHelpCommand(newHelpCmd())

	events := group("events", "Follow the events syncer publishes", `  syncer events tail
  syncer events tail --source cloud-images --all`)
	events.AddCommand(newTailCmd(stdout, stderr))
	catalogCmd := group("catalog", "Inspect the catalog: what syncer records per source", `  syncer catalog stats --config syncer.yaml
  syncer catalog ls --config syncer.yaml --source cloud-images --prefix images/`)
	catalogCmd.AddCommand(newCatalogLsCmd(stdout, stderr), newCatalogStatsCmd(stdout, stderr))
	configCmd := group("config", "Work with configuration files", `  syncer config check --config syncer.yaml`)
	configCmd.AddCommand(newConfigCheckCmd(stdout))

	root.AddCommand(
		newRunCmd(stderr),
		newScanCmd(stdout, stderr),
		events,
		catalogCmd,
		configCmd,
		newStatusCmd(stdout),
		newVersionCmd(stdout),
	)
	root.InitDefaultCompletionCmd()
	fixTree(root)
	return root
}

// group is a command that only holds subcommands.
func group(name, short, example string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Example: example}
}

// fixTree makes every command, cobra's own included, follow one set of
// conventions: argument errors are usage errors, and a group called without
// or with an unknown subcommand says so (cobra would print its help, exit 0).
func fixTree(c *cobra.Command) {
	if !c.Runnable() && c.HasSubCommands() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("missing subcommand for %q (one of %s)", c.CommandPath(), subcommandNames(c))
			}
			return unknownCommand(c, args[0])
		}
	}
	if c.Args == nil {
		c.Args = cobra.NoArgs
	}
	// Help shows Long when there is one: lead it with the one-line summary.
	if c.Long != "" && !strings.HasPrefix(c.Long, c.Short) {
		c.Long = c.Short + ".\n\n" + c.Long
	}
	c.SuggestionsMinimumDistance = 2
	// `help CMD` shows CMD's help without executing it: give it the help
	// flag cobra would otherwise add only on execution.
	c.InitDefaultHelpFlag()
	// Use lines spell out their flags, or are groups: no "[flags]" tail.
	c.DisableFlagsInUseLine = strings.Contains(c.Use, " ") || c.HasSubCommands()
	validate := c.Args
	c.Args = func(c *cobra.Command, args []string) error {
		if err := validate(c, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
	if c.Example == "" && c.Name() != "__complete" && c.Name() != "__completeNoDesc" {
		c.Example = "  " + c.CommandPath()
		switch {
		case c.Name() == "completion":
			c.Example = "  source <(syncer completion bash)\n  syncer completion zsh > \"${fpath[1]}/_syncer\""
		case c.Parent() != nil && c.Parent().Name() == "completion":
			c.Example = "  source <(" + c.CommandPath() + ")"
		}
	}
	for _, sub := range c.Commands() {
		fixTree(sub)
	}
}

func subcommandNames(c *cobra.Command) string {
	var names []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			names = append(names, s.Name())
		}
	}
	return strings.Join(names, ", ")
}

func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usagef("%s", msg)
}

// newHelpCmd replaces cobra's help command, which prints the top-level
// usage and exits 0 for an unknown topic.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Example: `  syncer help run
  syncer help events tail`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil {
				return &usageError{err}
			}
			if len(rest) > 0 {
				return usagef("unknown help topic %q", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}
