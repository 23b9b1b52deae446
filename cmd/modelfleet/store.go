package main

import (
	"fmt"
	"os"
	"strings"
)

// storeFlagHelp documents --store on the commands that take it.
const storeFlagHelp = "PostgreSQL DSN (postgres://...) keeping the fleet state, shared by gateway replicas; default $MODELFLEET_STORE, else the file $MODELFLEET_STORE_FILE names (a mounted Secret), else bbolt files in the data directory"

// storeDSN resolves where the gateway keeps its state: the flag, else
// $MODELFLEET_STORE, else the contents of the file $MODELFLEET_STORE_FILE
// names. "" means the embedded default (bbolt). The environment and the
// file keep a password out of `ps` and shell history.
func storeDSN(flag string) (string, error) {
	dsn, from := flag, "--store"
	if dsn == "" {
		dsn, from = os.Getenv("MODELFLEET_STORE"), "$MODELFLEET_STORE"
	}
	if dsn == "" {
		if path := os.Getenv("MODELFLEET_STORE_FILE"); path != "" {
			buf, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("$MODELFLEET_STORE_FILE: %w", err)
			}
			dsn, from = strings.TrimSpace(string(buf)), path
		}
	}
	if dsn == "" {
		return "", nil
	}
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		// Never echo the value: it may hold a password.
		return "", fmt.Errorf("%s: want a postgres:// or postgresql:// URL", from)
	}
	return dsn, nil
}
