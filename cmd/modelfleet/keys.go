package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet/app"
)

// newKeysCmd manages the release-signing keys (docs/security.md, "Release
// signing"): they live in the gateway's <pki-dir>/release-keys, which the
// worker mounts to sign.
func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Release-signing keys: rotate, revoke, export what sites pin"}
	dir := filepath.Join(dataDir(), "gateway", "pki", "release-keys")
	cmd.PersistentFlags().StringVar(&dir, "dir", dir, "the release keys directory (the gateway's <pki-dir>/release-keys)")
	var revoke []string
	var alg string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new release key (it signs first from the next start of the gateway and worker); --revoke retires old ones",
		Long: `Adds a new release-signing key. Every key not revoked signs every release
statement, the newest first, so sites keep verifying during the rotation.
Restart the gateway and the worker to use it: sites learn the new key set
with their next desired state (signed by the keys they already trust) and
from then on refuse what only a revoked key signed. Revoke a key by its ID
(modelfleet keys export lists them); keep revoked keys' files until every
site has learned the revocation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := app.RotateReleaseKeys(dir, revoke, alg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new release key %s in %s", id, dir)
			if len(revoke) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "; revoked %v", revoke)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nrestart the gateway and the worker to use it")
			return nil
		},
	}
	rotate.Flags().StringArrayVar(&revoke, "revoke", nil, "revoke the key with this ID (repeatable)")
	rotate.Flags().StringVar(&alg, "algorithm", app.KeyEd25519, "the new key's algorithm: "+app.KeyEd25519+" or "+app.KeyECDSAP256)
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the release keys sites pin (JSON; for `modelfleet edge --release-keys`)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(dir); err != nil {
				return err
			}
			rk, err := app.OpenReleaseKeys(dir, false)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(rk.Trust())
		},
	}
	cmd.AddCommand(rotate, export)
	return cmd
}
