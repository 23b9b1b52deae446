package main

import (
	"context"
	"fmt"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/app"
)

// addReleaseVaultFlag adds --release-key-vault to the gateway and the
// worker: release-signing keys held in Azure Key Vault (docs/security.md
// "Release signing").
func addReleaseVaultFlag(f *pflag.FlagSet, urls *[]string) {
	f.StringArrayVar(urls, "release-key-vault", splitList(os.Getenv("MODELFLEET_RELEASE_KEY_VAULT")),
		"release-signing key in Azure Key Vault, https://<vault>.vault.azure.net/keys/<name>[/<version>] (EC P-256; repeatable, newest first; credential: DefaultAzureCredential) ($MODELFLEET_RELEASE_KEY_VAULT, comma-separated)")
}

// openReleaseVault opens the --release-key-vault keys with azidentity's
// DefaultAzureCredential (workload or managed identity in Azure; the
// identity needs the key permissions get and sign, e.g. the role Key Vault
// Crypto User).
func openReleaseVault(ctx context.Context, urls []string) (app.VaultKeys, error) {
	return openVaultKeys(ctx, "release keys", urls)
}

// openVaultKeys opens Key Vault keys (--release-key-vault,
// --control-key-vault; what names them in errors) with
// DefaultAzureCredential.
func openVaultKeys(ctx context.Context, what string, urls []string) (app.VaultKeys, error) {
	if len(urls) == 0 {
		return nil, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, fmt.Errorf("%s in key vault: azure credential: %w", what, err)
	}
	keys, err := app.OpenVaultKeys(ctx, urls, cred, nil)
	if err != nil && what != "release keys" {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return keys, err
}
