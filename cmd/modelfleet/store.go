package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// storeEntraFlagHelp documents --store-entra.
const storeEntraFlagHelp = "authenticate to the --store database with Microsoft Entra ID (Azure Database for PostgreSQL): each new connection's password is an access token from DefaultAzureCredential (workload identity, managed identity, az login); the DSN names the Entra principal as its user and holds no password ($MODELFLEET_STORE_ENTRA)"

// storeEntraDefault is --store-entra's default, from $MODELFLEET_STORE_ENTRA.
func storeEntraDefault() bool {
	on, _ := strconv.ParseBool(os.Getenv("MODELFLEET_STORE_ENTRA"))
	return on
}

// newStoreCredential is the Entra credential the store is reached with.
var newStoreCredential = func() (azcore.TokenCredential, error) {
	return azidentity.NewDefaultAzureCredential(nil)
}

// storeCredential is the credential of --store-entra for dsn, or nil
// without it.
func storeCredential(entra bool, dsn string) (azcore.TokenCredential, error) {
	if !entra {
		return nil, nil
	}
	if dsn == "" {
		return nil, errors.New("--store-entra: no --store database to authenticate to")
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			return nil, errors.New("--store-entra: the store DSN holds a password; with Entra authentication the password is a token: remove it")
		}
	}
	return newStoreCredential()
}

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
