// Command xmppgw bridges RabbitMQ queues and one XMPP connection.
//
//	xmppgw run -c FILE           run until SIGINT/SIGTERM; SIGHUP reloads
//	xmppgw check-config [-q] -c FILE  validate and print the effective config (secrets redacted)
//	xmppgw send -c FILE --target JID --text TEXT [--payload JSON] [--type T]
//	xmppgw send -c FILE --stdin       one item per line (JSON lines), pipelined with confirms
//	xmppgw dead -c FILE               list the dead-letter queue grouped by reason
//	xmppgw dead requeue -c FILE (--reason R | --id ID | --all)
//	xmppgw version
//
// Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags or config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time: -ldflags "-X main.version=..."
var version = "dev"

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

const usage = `usage: xmppgw <command> [flags]

commands:
  run -c FILE            run the gateway until SIGINT/SIGTERM; SIGHUP reloads the config
  check-config [-q] -c FILE
                         validate the config and print it with secrets redacted (-q: print only errors)
  send -c FILE --target JID --text TEXT [--payload JSON] [--type T]
                         publish one item to the outbound queue and wait for the broker's confirm
  send -c FILE --stdin [--window N] [--no-check]
                         publish the items read from standard input, one JSON object per line, with confirms
  dead -c FILE [--reason R]... [--id ID]... [--items] [--max N]
                         list the dead-letter queue grouped by reason (count, one sample each); removes nothing
  dead requeue -c FILE (--reason R... | --id ID... | --all) [--max N] [--dry-run]
                         move items back to the out queue, each acked in the dead-letter queue after its copy is confirmed
  version                print version and build info
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(args, stderr)
	case "check-config":
		return cmdCheckConfig(args, stdout, stderr)
	case "send":
		return cmdSend(args, stdin, stdout, stderr)
	case "dead":
		return cmdDead(args, stdout, stderr)
	case "version", "--version", "-v":
		return cmdVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "xmppgw: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// newFlags makes a flag set for a subcommand with the common -c flag.
func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("xmppgw "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := fs.String("c", "", "config file (YAML)")
	fs.StringVar(cfg, "config", "", "config file (YAML)")
	return fs, cfg
}

// parseFlags parses args, returning an exit code when parsing ends the command.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	return 0, true
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
