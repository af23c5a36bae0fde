package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"go.yaml.in/yaml/v3"

	"xmppgw/gateway"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("check-config", stderr)
	quiet := fs.Bool("q", false, "print nothing when the config is valid (for ExecStartPre)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "xmppgw check-config: -c FILE is required")
		return exitUsage
	}
	cfg, err := gateway.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return exitUsage
	}
	if *quiet {
		return exitOK
	}
	out, err := yaml.Marshal(cfg.Redacted())
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "# %s: valid\n%s", *cfgPath, out)
	return exitOK
}

func cmdVersion(stdout io.Writer) int {
	fmt.Fprintf(stdout, "xmppgw %s\n", version)
	fmt.Fprintf(stdout, "go %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified":
				fmt.Fprintf(stdout, "%s %s\n", s.Key, s.Value)
			}
		}
		for _, d := range bi.Deps {
			switch d.Path {
			case "mellium.im/xmpp", "github.com/rabbitmq/amqp091-go":
				fmt.Fprintf(stdout, "%s %s\n", d.Path, d.Version)
			}
		}
	}
	return exitOK
}
