package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"xmppgw/gateway"
	"xmppgw/gateway/config"
)

func cmdRun(args []string, stderr io.Writer) int {
	fs, cfgPath := newFlags("run", stderr)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, err := gateway.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return exitUsage
	}
	level := new(slog.LevelVar)
	log := newLogger(stderr, cfg.Log, level)
	tuneGC()
	g, err := gateway.New(cfg, gateway.Deps{Logger: log, LogLevel: level, Version: version})
	if err != nil {
		log.Error("cannot start", "err", err)
		if errors.Is(err, gateway.ErrConfig) {
			return exitUsage
		}
		return exitFailure
	}
	ctx, stop := signalContext()
	defer stop()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(g, *cfgPath, log)
			}
		}
	}()

	log.Info("starting", "version", version, "config", *cfgPath, "mode", cfg.XMPP.Mode, "http", g.HTTPAddr())
	if err := g.Run(ctx); err != nil {
		if errors.Is(err, gateway.ErrConfig) {
			return exitUsage // a restart would fail the same way
		}
		return exitFailure
	}
	return exitOK
}

// reload reads the config again; a bad file keeps the old config.
func reload(g *gateway.Gateway, path string, log *slog.Logger) {
	cfg, err := gateway.LoadConfig(path)
	if err != nil {
		log.Error("reload failed; keeping the running config", "err", err)
		return
	}
	g.Reload(cfg)
}

// newLogger builds the process logger from the log section.
func newLogger(w io.Writer, c config.LogConfig, level *slog.LevelVar) *slog.Logger {
	level.Set(config.ParseLevel(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// gcPercent is the garbage collector's target unless GOGC is set. The
// gateway's live heap is small (buffers bounded by prefetch and the inbound
// bounds), so trading some memory for less GC work is cheap; measured end
// to end it cut the gateway's CPU per inbound event by ~14 %.
//
// memoryLimit is the soft limit of the Go runtime's memory unless
// GOMEMLIMIT is set: under it the GC target above applies; near it the
// collector works harder, so that a flood or a backlog leaves the resident
// size flat (about memoryLimit plus the binary's pages) instead of growing
// with GOGC's headroom. It is soft: a live heap above it (many large items
// in flight: amqp.prefetch × item size) is kept, at the cost of GC CPU —
// raise GOMEMLIMIT then (README, Operations).
//
// maxProcs is the number of threads running Go code at once unless
// GOMAXPROCS is set. The gateway's work is I/O: a few goroutines passing
// items along (the broker's reader, the pipeline, the XMPP read loop), each
// a few µs per item. With a thread per core they wake each other across
// threads, and the scheduler's handoffs and spinning cost more than the
// work: measured end to end (the bench's outbound, 60,000 items, two runs
// each) one thread cut the gateway's CPU per item from 28–35 µs to
// 20–21 µs, and the inbound rate rose 15 %. One core moves far more items
// than the XMPP server behind it can route.
const (
	gcPercent   = 400
	memoryLimit = 32 << 20
	maxProcs    = 1
)

func tuneGC() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(maxProcs)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
}
