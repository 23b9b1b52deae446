package main

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/workers"
)

// The environment the Helm charts set turns TLS on; flags override it; the
// API key comes from the environment only.
func TestTemporalTLSFromEnvironmentAndFlags(t *testing.T) {
	t.Setenv("MODELFLEET_TEMPORAL_TLS", "true")
	t.Setenv("MODELFLEET_TEMPORAL_TLS_CA", "/etc/modelfleet/temporal-tls/ca.crt")
	t.Setenv("MODELFLEET_TEMPORAL_TLS_CERT", "/etc/modelfleet/temporal-tls/tls.crt")
	t.Setenv("MODELFLEET_TEMPORAL_TLS_KEY", "/etc/modelfleet/temporal-tls/tls.key")
	t.Setenv("MODELFLEET_TEMPORAL_TLS_SERVER_NAME", "temporal.internal")
	t.Setenv("MODELFLEET_TEMPORAL_API_KEY", "secret-key")
	g := &globals{temporalAddress: "t:7233", namespace: "prod"}
	fs := pflag.NewFlagSet("modelfleet", pflag.ContinueOnError)
	g.addTemporalTLSFlags(fs)
	if err := fs.Parse([]string{"--temporal-tls-server-name=override.internal"}); err != nil {
		t.Fatal(err)
	}
	want := workers.Connection{Address: "t:7233", Namespace: "prod", APIKey: "secret-key", TLS: workers.TLS{
		Enabled: true, CAFile: "/etc/modelfleet/temporal-tls/ca.crt", CertFile: "/etc/modelfleet/temporal-tls/tls.crt",
		KeyFile: "/etc/modelfleet/temporal-tls/tls.key", ServerName: "override.internal",
	}}
	if got := g.temporal(); got != want {
		t.Errorf("connection = %+v, want %+v", got, want)
	}
	if fs.Lookup("temporal-api-key") != nil {
		t.Error("an API key flag would show the key in ps and shell history")
	}
	// A process given the chart's paths without the Secret mounted says
	// which file is missing, before dialing, and never prints the key.
	_, err := g.temporal().Dial(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "/etc/modelfleet/temporal-tls/ca.crt") || strings.Contains(err.Error(), "secret-key") {
		t.Errorf("dial error %v, want one naming the missing CA file and not the key", err)
	}
}
