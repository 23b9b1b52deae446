package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreDSN(t *testing.T) {
	t.Setenv("MODELFLEET_STORE", "")
	t.Setenv("MODELFLEET_STORE_FILE", "")
	if dsn, err := storeDSN(""); dsn != "" || err != nil {
		t.Errorf("nothing set = %q, %v; want the embedded default", dsn, err)
	}
	if _, err := storeDSN("mysql://u:secret@h/db"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("not postgres: %v; want an error that does not echo the DSN", err)
	}
	file := filepath.Join(t.TempDir(), "dsn")
	os.WriteFile(file, []byte("postgres://u:p@db:5432/fleet\n"), 0o600)
	t.Setenv("MODELFLEET_STORE_FILE", file)
	if dsn, err := storeDSN(""); dsn != "postgres://u:p@db:5432/fleet" || err != nil {
		t.Errorf("from file = %q, %v", dsn, err)
	}
	t.Setenv("MODELFLEET_STORE", "postgresql://env/db")
	if dsn, _ := storeDSN(""); dsn != "postgresql://env/db" {
		t.Errorf("env = %q; want it before the file", dsn)
	}
	if dsn, _ := storeDSN("postgres://flag/db"); dsn != "postgres://flag/db" {
		t.Errorf("flag = %q; want it first", dsn)
	}
	t.Setenv("MODELFLEET_STORE", "")
	t.Setenv("MODELFLEET_STORE_FILE", filepath.Join(t.TempDir(), "missing"))
	if _, err := storeDSN(""); err == nil {
		t.Error("a missing secret file is not an error")
	}
}
