package workload

import (
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverRescue closes a window in mochi-mqtt v2.7.9 where a QoS 1 message
// is lost when a client resumes its session: the broker copies the old
// session's in-flight messages to the new client, clears the old ones, and
// only then registers the new client. A publish that looks the client up in
// between is stored on the old, discarded session. Seen here as one message
// in a few thousand lost across a restart under load. The broker calls
// OnQosPublish right after storing the message, on the session it used; if
// that session has been taken over, this hook hands the message to the
// session now registered under the same client ID. A message that was also
// copied is then delivered twice, which QoS 1 allows; none is lost.
type takeoverRescue struct {
	mqtt.HookBase
	srv     *mqtt.Server
	rescued atomic.Int64
}

func (h *takeoverRescue) ID() string { return "modelfleet-takeover-rescue" }

func (h *takeoverRescue) Provides(b byte) bool { return b == mqtt.OnQosPublish }

func (h *takeoverRescue) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if cl.IsTakenOver() && pk.FixedHeader.Type == packets.Publish {
		go h.rescue(cl, pk)
	}
}

func (h *takeoverRescue) rescue(old *mqtt.Client, pk packets.Packet) {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		cur, ok := h.srv.Clients.Get(old.ID)
		if !ok {
			return // the session ended: nothing to deliver to
		}
		if cur == old {
			continue // the new client is not registered yet
		}
		if cur.Properties.Clean {
			return // it started clean: the old session's messages are dropped by design
		}
		id, err := cur.NextPacketID()
		if err != nil {
			return
		}
		pk.PacketID = uint16(id)
		pk.FixedHeader.Dup = false
		cur.State.Inflight.Set(pk)
		_ = cur.WritePacket(pk) // offline: it stays in flight for the next resume
		h.rescued.Add(1)
		return
	}
}
