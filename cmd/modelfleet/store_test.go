package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
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

func TestStoreCredential(t *testing.T) {
	if c, err := storeCredential(false, "postgres://u:p@db/fleet"); c != nil || err != nil {
		t.Errorf("without --store-entra = %v, %v", c, err)
	}
	if _, err := storeCredential(true, ""); err == nil {
		t.Error("--store-entra without a store: no error")
	}
	if _, err := storeCredential(true, "postgres://id:secret@db.postgres.database.azure.com/fleet"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("a password with --store-entra: %v; want an error that does not echo it", err)
	}
	made := 0
	old := newStoreCredential
	t.Cleanup(func() { newStoreCredential = old })
	newStoreCredential = func() (azcore.TokenCredential, error) {
		made++
		return azidentity.NewDefaultAzureCredential(nil)
	}
	c, err := storeCredential(true, "postgres://modelfleet-gateway@db.postgres.database.azure.com/fleet?sslmode=require")
	if c == nil || err != nil || made != 1 {
		t.Errorf("--store-entra = %v, %v (%d made)", c, err, made)
	}
	t.Setenv("MODELFLEET_STORE_ENTRA", "true")
	if !storeEntraDefault() {
		t.Error("$MODELFLEET_STORE_ENTRA=true is not --store-entra's default")
	}
}
