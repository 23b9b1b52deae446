package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// maxKeyFile bounds a --key-file: a key per line, at most
// MaxAPIKeysPerScope of them.
const maxKeyFile = 64 << 10

// newSiteAPIKeysCmd manages the router API keys sites ask score and
// feedback callers for, as product configuration: only their sha256
// hashes leave this machine (docs/security.md, "Router API keys").
func newSiteAPIKeysCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "api-keys",
		Short: "Router API keys of sites: set, clear or show them, hash a key",
		Long: `Router API keys are what a site's inference router asks callers of
/score, /feedback and /api/models for ("Authorization: Bearer <key>"). Set
here, they travel to the sites in their desired state as sha256 hashes: the
CLI hashes the keys, which never reach the control plane. A key is 16 to
1024 visible ASCII characters; make one with: openssl rand -hex 24.

A site's mounted keys file (modelfleet edge --api-keys-file, the edge
chart's apiKeys.secret) wins over these for each scope it sets; these win
over keys set at the site itself (docs/security.md, "Router API keys").`,
	}
	cmd.AddCommand(newAPIKeysSetCmd(g), newAPIKeysClearCmd(g), newAPIKeysShowCmd(g), newAPIKeysHashCmd())
	return cmd
}

// target is how a command names its sites.
type target struct {
	selector []string
	all      bool
	model    string
}

func (t *target) flags(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&t.selector, "selector", nil, "the sites with this label key=value (repeatable: every one must match)")
	cmd.Flags().BoolVar(&t.all, "all", false, "every site of the fleet")
	cmd.Flags().StringVar(&t.model, "model", "", "the model whose keys these are (default: site-wide keys, which open every model)")
}

func (t *target) request(sites []string) (modelfleet.APIKeysRequest, error) {
	req := modelfleet.APIKeysRequest{Sites: sites, All: t.all, Model: t.model}
	if len(t.selector) > 0 {
		req.Selector = map[string]string{}
		for _, l := range t.selector {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return req, fmt.Errorf("--selector %q: want key=value", l)
			}
			req.Selector[k] = v
		}
	}
	return req, nil
}

func putAPIKeys(cmd *cobra.Command, g *globals, req modelfleet.APIKeysRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	var res modelfleet.APIKeysResult
	if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodPut, g.gatewayURL+"/api/apikeys", body, &res); err != nil {
		return err
	}
	scope := "site-wide"
	if req.Model != "" {
		scope = "model " + req.Model
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s api keys: %d key(s) at %d site(s) (%d changed; each applies them with its next desired state): %s\n",
		scope, len(req.SHA256), len(res.Sites), res.Changed, strings.Join(res.Sites, ", "))
	return nil
}

func newAPIKeysSetCmd(g *globals) *cobra.Command {
	var t target
	var keyFiles, hashes []string
	cmd := &cobra.Command{
		Use:   "set [<site>...] [--selector k=v | --all] [--model m] --key-file FILE [--sha256 HEX]",
		Short: "Set the router API keys of a model, or site-wide, at sites (admin, release manager)",
		Long: `Replaces the keys of one scope (--model, or site-wide) at the sites named,
selected (--selector) or all (--all). Keys come from files (--key-file, one
key per line; "-" for standard input) and are hashed here; --sha256 adds a
hash made elsewhere. Several keys are valid at once, which is how a key is
rotated without dropping a request: set old and new, move the callers, set
the new one alone.`,
		Example: `  openssl rand -hex 24 > line2.key
  modelfleet site api-keys set --selector plant=a --model bearing-failure --key-file line2.key
  modelfleet site api-keys set site-1 --key-file old.key --key-file new.key   # rotation, step 1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := t.request(args)
			if err != nil {
				return err
			}
			for _, f := range keyFiles {
				keys, err := readKeyFile(f, cmd.InOrStdin())
				if err != nil {
					return err
				}
				for _, k := range keys {
					req.SHA256 = append(req.SHA256, modelfleet.HashAPIKey(k))
				}
			}
			for _, h := range hashes {
				req.SHA256 = append(req.SHA256, strings.ToLower(h))
			}
			if len(req.SHA256) == 0 {
				return fmt.Errorf("no keys: give --key-file or --sha256 (to remove keys: modelfleet site api-keys clear)")
			}
			return putAPIKeys(cmd, g, req)
		},
	}
	t.flags(cmd)
	cmd.Flags().StringArrayVar(&keyFiles, "key-file", nil, "file of keys, one a line (repeatable; - for standard input)")
	cmd.Flags().StringArrayVar(&hashes, "sha256", nil, "a key's sha256 in hex, as `modelfleet site api-keys hash` prints it (repeatable)")
	return cmd
}

func newAPIKeysClearCmd(g *globals) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "clear [<site>...] [--selector k=v | --all] [--model m]",
		Short: "Remove the control plane's router API keys of a model, or site-wide, at sites",
		Long: `Removes one scope's keys from the sites' desired state. The sites then use,
for that scope, the keys set at the site (a keys file, or local keys), or
none: with no keys anywhere a router asks for none.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := t.request(args)
			if err != nil {
				return err
			}
			return putAPIKeys(cmd, g, req)
		},
	}
	t.flags(cmd)
	return cmd
}

func newAPIKeysShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show <site>",
		Short: "Print the router API key hashes a site's desired state carries (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ds modelfleet.Desired
			if err := httpjson.Do(cmd.Context(), g.http(), "gateway", http.MethodGet, g.gatewayURL+"/api/sites/"+url.PathEscape(args[0])+"/desired?wait=0s", nil, &ds); err != nil {
				return err
			}
			keys := ds.APIKeys
			if keys == nil {
				keys = &modelfleet.APIKeys{}
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(keys)
		},
	}
}

func newAPIKeysHashCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "hash --key-file FILE",
		Short: "Print the sha256 of each key in a file, as sites store them (for a keys file's sha256 lists)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := readKeyFile(keyFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			for _, k := range keys {
				fmt.Fprintln(cmd.OutOrStdout(), modelfleet.HashAPIKey(k))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "-", "file of keys, one a line (- for standard input)")
	return cmd
}

// readKeyFile reads keys, one a line; blank lines and surrounding spaces
// are ignored. An error never quotes a key.
func readKeyFile(path string, stdin io.Reader) ([]string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key file %s is over %d bytes", path, maxKeyFile)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxKeyFile)
	for n := 1; sc.Scan(); n++ {
		k := strings.TrimSpace(sc.Text())
		if k == "" {
			continue
		}
		if err := modelfleet.ValidateAPIKey(k); err != nil {
			return nil, fmt.Errorf("key file %s, line %d: %w", path, n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("key file %s holds no key", path)
	}
	if len(keys) > modelfleet.MaxAPIKeysPerScope {
		return nil, fmt.Errorf("key file %s holds %d keys, at most %d", path, len(keys), modelfleet.MaxAPIKeysPerScope)
	}
	return keys, nil
}
