package agent

import (
	"bytes"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/modelfleet/modelfleet/fleet"
	"github.com/modelfleet/modelfleet/httpjson"
)

// The agent's tests need of the gateway only what a site talks to: the site
// directory, served over HTTP. (app.OpenGateway serves the same handler
// under /api/, beside the webhook; importing app here would be a cycle.)

type GatewayConfig struct {
	Addr    string
	DataDir string
}

type Gateway struct {
	Directory *fleet.Directory
	http      *httpjson.Server
	dataDir   string
}

func OpenGateway(cfg GatewayConfig) (*Gateway, error) {
	dir, err := fleet.Open(filepath.Clean(cfg.DataDir))
	if err != nil {
		return nil, err
	}
	srv, err := httpjson.Listen(cfg.Addr, dir.Handler())
	if err != nil {
		dir.Close()
		return nil, err
	}
	srv.Start(orDefault(nil), "gateway")
	return &Gateway{Directory: dir, http: srv, dataDir: cfg.DataDir}, nil
}

func (g *Gateway) URL() string { return g.http.URL() }

func (g *Gateway) Close() error {
	g.http.Close()
	return g.Directory.Close()
}

// ReadModelCard reads what the tests need of a model card.
func ReadModelCard(path string) (card struct {
	Format   string   `yaml:"format"`
	Features []string `yaml:"features"`
}, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return card, err
	}
	err = yaml.NewDecoder(bytes.NewReader(b)).Decode(&card)
	return card, err
}
