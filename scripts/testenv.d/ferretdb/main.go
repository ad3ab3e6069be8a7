// Command ferretdb runs FerretDB v1 through its embeddable package for the
// project's test environment (scripts/testenv.d/13-ferretdb.sh).
//
// It exists because FerretDB's own command cannot be used from the module proxy:
// `go install .../cmd/ferretdb@v1.24.2` builds, but the binary panics at start
// since the version file it embeds is generated in FerretDB's repository and is
// not in the module. The embeddable package skips that file.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:57017", "TCP address of the MongoDB wire listener")
	sqliteDir := flag.String("sqlite-dir", "", "directory of the SQLite databases (one file per database)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	if err := run(*listen, *sqliteDir, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, sqliteDir, logLevel string) error {
	if sqliteDir == "" {
		return fmt.Errorf("-sqlite-dir is required")
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}

	if err := os.MkdirAll(sqliteDir, 0o755); err != nil {
		return err
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen},
		Logger:   logger,
		Handler:  "sqlite",
		// FerretDB wants a file: URI of a directory, with the trailing slash.
		SQLiteURL: "file:" + sqliteDir + "/",
	})
	if err != nil {
		return err
	}

	// TERM (scripts/testenv down) and INT end Run, which closes the listener
	// and the SQLite databases cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger.Info("listening", "addr", listen)

	return f.Run(ctx)
}
