package main

import (
	"os"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/modelfleet/modelfleet/workers"
)

// addTemporalFlags adds where Temporal is and how to reach it: address,
// namespace and transport security. Flag sets that share g share the values.
func (g *globals) addTemporalFlags(pf *pflag.FlagSet) {
	pf.StringVar(&g.temporalAddress, "temporal-address", envOr("MODELFLEET_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port ($MODELFLEET_TEMPORAL_ADDRESS)")
	pf.StringVar(&g.namespace, "namespace", envOr("MODELFLEET_NAMESPACE", "default"), "Temporal namespace ($MODELFLEET_NAMESPACE)")
	g.addTemporalTLSFlags(pf)
}

// addTemporalTLSFlags adds the transport security of the connection to
// Temporal. The environment variables are the ones the Helm charts set from
// temporal.tls (deploy/helm); the API key is read from the environment only,
// so it shows neither in `ps` nor in shell history.
func (g *globals) addTemporalTLSFlags(pf *pflag.FlagSet) {
	t := &g.temporalTLS
	on, _ := strconv.ParseBool(os.Getenv("MODELFLEET_TEMPORAL_TLS"))
	pf.BoolVar(&t.Enabled, "temporal-tls", on, "reach Temporal over TLS, verified by the system roots unless --temporal-tls-ca ($MODELFLEET_TEMPORAL_TLS); any other --temporal-tls-* flag implies it")
	pf.StringVar(&t.CAFile, "temporal-tls-ca", os.Getenv("MODELFLEET_TEMPORAL_TLS_CA"), "PEM file of the CAs that sign Temporal's server certificate ($MODELFLEET_TEMPORAL_TLS_CA)")
	pf.StringVar(&t.CertFile, "temporal-tls-cert", os.Getenv("MODELFLEET_TEMPORAL_TLS_CERT"), "client certificate for mutual TLS, PEM ($MODELFLEET_TEMPORAL_TLS_CERT)")
	pf.StringVar(&t.KeyFile, "temporal-tls-key", os.Getenv("MODELFLEET_TEMPORAL_TLS_KEY"), "the client certificate's key, PEM ($MODELFLEET_TEMPORAL_TLS_KEY)")
	pf.StringVar(&t.ServerName, "temporal-tls-server-name", os.Getenv("MODELFLEET_TEMPORAL_TLS_SERVER_NAME"), "name in Temporal's certificate, if not the address's host ($MODELFLEET_TEMPORAL_TLS_SERVER_NAME)")
}

// temporal is how every process but the dev stack reaches Temporal; an API
// key comes from $MODELFLEET_TEMPORAL_API_KEY (Temporal Cloud).
func (g *globals) temporal() workers.Connection {
	return workers.Connection{
		Address:   g.temporalAddress,
		Namespace: g.namespace,
		TLS:       g.temporalTLS,
		APIKey:    os.Getenv("MODELFLEET_TEMPORAL_API_KEY"),
	}
}
