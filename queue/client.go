package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/modelfleet/modelfleet/httpjson"
)

// Client talks to a queue's HTTP API (Handler): remote edge agents send
// through it, the CLI reads stats, peeks and redrives.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Queue   string // the queue's name
	// HTTPClient is used for requests. If nil, http.DefaultClient is used.
	HTTPClient *http.Client
}

var _ Sender = (*Client)(nil)

// Send sends m. A Send that failed for a network error may be retried with
// the same m.ID: duplicate detection drops the copy if the first arrived.
func (c *Client) Send(ctx context.Context, m Message) error {
	body, err := json.Marshal(SendRequest{ID: m.ID, Body: m.Body, ContentType: m.ContentType, Properties: m.Properties})
	if err != nil {
		return fmt.Errorf("queue: encode message %q: %w", m.ID, err)
	}
	var out SendResponse
	return c.do(ctx, http.MethodPost, "messages", nil, body, &out)
}

// Stats returns the queue's counts.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	return s, c.do(ctx, http.MethodGet, "stats", nil, nil, &s)
}

// Peek returns up to max messages from sequence number from on, of the
// dead-letter sub-queue when deadLetter is set, without locking them.
func (c *Client) Peek(ctx context.Context, from int64, max int, deadLetter bool) ([]PeekedMessage, error) {
	q := url.Values{
		"from":       {strconv.FormatInt(from, 10)},
		"max":        {strconv.Itoa(max)},
		"deadletter": {strconv.FormatBool(deadLetter)},
	}
	var ms []PeekedMessage
	return ms, c.do(ctx, http.MethodGet, "messages", q, nil, &ms)
}

// Redrive moves up to max dead-lettered messages back to the queue and
// returns how many it moved.
func (c *Client) Redrive(ctx context.Context, max int) (int, error) {
	var out RedriveResponse
	err := c.do(ctx, http.MethodPost, "redrive", url.Values{"max": {strconv.Itoa(max)}}, nil, &out)
	return out.Redriven, err
}

func (c *Client) do(ctx context.Context, method, op string, query url.Values, body []byte, out any) error {
	target := c.BaseURL + "/api/queues/" + url.PathEscape(c.Queue) + "/" + op
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	return httpjson.Do(ctx, c.HTTPClient, "queue", method, target, body, out)
}
