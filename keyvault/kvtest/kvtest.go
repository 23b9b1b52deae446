// Package kvtest is an Azure Key Vault for tests: the SDK's own fake
// server (azkeys/fake) answering GetKey and Sign with real ECDSA keys held
// in memory, behind Key Vault's authentication challenge, so the real
// azkeys client — its challenge policy, bearer token, request and response
// serialisation — runs unchanged. No network: the client's transport is
// the fake.
package kvtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys/fake"
)

// URL is the fake vault's address.
const URL = "https://modelfleet-test.vault.azure.net"

// Vault is one fake vault. Its fields change what it answers; set them
// before the calls they affect.
type Vault struct {
	mu   sync.Mutex
	keys map[string][]version // name → versions, oldest first

	// Answer, if set, rewrites the key GetKey answers (a key of another
	// type, without "sign", for another name…).
	Answer func(*azkeys.KeyBundle)
	// Forge, if set, signs in place of the key (a vault answering with the
	// wrong key).
	Forge *ecdsa.PrivateKey

	// Signed lists the "name/version" of every Sign served, in order.
	Signed []string
	// Unauthenticated counts requests answered with the challenge (no
	// bearer token).
	Unauthenticated int
}

type version struct {
	id  string
	key *ecdsa.PrivateKey
	at  time.Time
}

// New returns an empty vault.
func New() *Vault { return &Vault{keys: map[string][]version{}} }

// AddKey creates a new version of the P-256 key name, created at, and
// returns its private key and version.
func (v *Vault) AddKey(tb testing.TB, name string, at time.Time) (*ecdsa.PrivateKey, string) {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	id := fmt.Sprintf("%032x", len(v.keys[name])+1) // 32 hex digits, as Key Vault's
	v.keys[name] = append(v.keys[name], version{id: id, key: k, at: at})
	return k, id
}

// KeyURL is the version-less URL of key name.
func (v *Vault) KeyURL(name string) string { return URL + "/keys/" + name }

// Credential is a token credential the vault accepts.
func (v *Vault) Credential() azcore.TokenCredential { return &azfake.TokenCredential{} }

// ClientOptions point an azkeys client at the vault (no retries: a
// refusal is answered at once).
func (v *Vault) ClientOptions() *azkeys.ClientOptions {
	return &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: &challenge{v: v, next: fake.NewServerTransport(v.server())},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

// challenge answers a request without a bearer token as Key Vault does:
// 401 with the WWW-Authenticate challenge that names the token's resource.
type challenge struct {
	v    *Vault
	next policy.Transporter
}

func (c *challenge) Do(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.Header.Get("Authorization"), "Bearer ") {
		c.v.mu.Lock()
		c.v.Unauthenticated++
		c.v.mu.Unlock()
		h := http.Header{}
		h.Set("WWW-Authenticate", `Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource="https://vault.azure.net"`)
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: h, Body: io.NopCloser(strings.NewReader(`{"error":{"code":"Unauthorized"}}`)), Request: req}, nil
	}
	return c.next.Do(req)
}

func (v *Vault) find(name, ver string) (version, bool) {
	vs := v.keys[name]
	if len(vs) == 0 {
		return version{}, false
	}
	if ver == "" {
		return vs[len(vs)-1], true
	}
	for _, x := range vs {
		if x.id == ver {
			return x, true
		}
	}
	return version{}, false
}

func (v *Vault) server() *fake.Server {
	return &fake.Server{
		GetKey: func(_ context.Context, name, ver string, _ *azkeys.GetKeyOptions) (resp azfake.Responder[azkeys.GetKeyResponse], errResp azfake.ErrorResponder) {
			v.mu.Lock()
			defer v.mu.Unlock()
			k, ok := v.find(name, ver)
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "KeyNotFound")
				return
			}
			x, y := make([]byte, 32), make([]byte, 32)
			k.key.X.FillBytes(x)
			k.key.Y.FillBytes(y)
			b := azkeys.KeyBundle{
				Attributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true), Created: to.Ptr(k.at), Updated: to.Ptr(k.at)},
				Key: &azkeys.JSONWebKey{
					Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256), X: x, Y: y,
					KID:    to.Ptr(azkeys.ID(URL + "/keys/" + name + "/" + k.id)),
					KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)},
				},
			}
			if v.Answer != nil {
				v.Answer(&b)
			}
			resp.SetResponse(http.StatusOK, azkeys.GetKeyResponse{KeyBundle: b}, nil)
			return
		},
		Sign: func(_ context.Context, name, ver string, p azkeys.SignParameters, _ *azkeys.SignOptions) (resp azfake.Responder[azkeys.SignResponse], errResp azfake.ErrorResponder) {
			v.mu.Lock()
			defer v.mu.Unlock()
			k, ok := v.find(name, ver)
			if !ok || ver == "" {
				errResp.SetResponseError(http.StatusNotFound, "KeyNotFound")
				return
			}
			if p.Algorithm == nil || *p.Algorithm != azkeys.SignatureAlgorithmES256 || len(p.Value) != 32 {
				errResp.SetResponseError(http.StatusBadRequest, "BadParameter")
				return
			}
			signer := k.key
			if v.Forge != nil {
				signer = v.Forge
			}
			r, s, err := ecdsa.Sign(rand.Reader, signer, p.Value)
			if err != nil {
				errResp.SetError(err)
				return
			}
			raw := make([]byte, 64)
			r.FillBytes(raw[:32])
			s.FillBytes(raw[32:])
			v.Signed = append(v.Signed, name+"/"+ver)
			resp.SetResponse(http.StatusOK, azkeys.SignResponse{KeyOperationResult: azkeys.KeyOperationResult{
				KID: to.Ptr(azkeys.ID(URL + "/keys/" + name + "/" + ver)), Result: raw,
			}}, nil)
			return
		},
	}
}
