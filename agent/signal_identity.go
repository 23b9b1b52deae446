package agent

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/modelfleet/modelfleet/queue"
	"github.com/modelfleet/modelfleet/signals"
)

// signalKey is the site's current key and leaf certificate (DER), for
// signing signal messages (signals.SignedSender): the key the site's mTLS
// certificate is for, so the monitor knows the sender whatever carried
// the message. It reads them at each call, so a renewal is picked up.
func (id *Identity) signalKey() (crypto.Signer, []byte, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.cert == nil || len(id.cert.Certificate) == 0 {
		return nil, nil, errors.New("site identity has no certificate")
	}
	k, ok := id.cert.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("site key of type %T cannot sign", id.cert.PrivateKey)
	}
	return k, id.cert.Certificate[0], nil
}

// signedQueue signs what the agent sends to q with the site's identity:
// the one Run enrolled or loaded, else the one on disk (a site fed by a
// desired-state file that sends straight to Service Bus). Without an
// identity messages go unsigned, which only a gateway's embedded queue
// takes (it stamps the sender from the mTLS certificate).
func (s *edgeSignals) signedQueue(cfg Config, id *Identity, q queue.Sender) queue.Sender {
	if id == nil {
		loaded, err := LoadIdentity(identityDir(cfg.DataDir), cfg.SiteID)
		if err != nil {
			s.log.Warn("site identity unreadable: signal messages go unsigned", "error", err)
		}
		id = loaded
	}
	if id == nil {
		if cfg.SignalSender != nil {
			s.log.Warn("site not enrolled: its signal messages go unsigned and the drift monitor dead-letters them (Service Bus takes only signed messages); enrol the site")
		}
		return q
	}
	return &signals.SignedSender{Next: q, Key: id.signalKey}
}
