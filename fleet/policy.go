package fleet

import (
	"context"

	"github.com/modelfleet/modelfleet"
	"github.com/modelfleet/modelfleet/rollout"
)

// PutPolicy validates and stores a model's rollout policy document. A bad
// document is refused whole: nothing is stored.
func (d *Directory) PutPolicy(model string, doc []byte) (rollout.Policy, error) {
	if err := modelfleet.ValidateName("model name", model); err != nil {
		return rollout.Policy{}, err
	}
	p, err := rollout.Parse(doc)
	if err != nil {
		return p, err
	}
	return p, d.store.PutPolicy(context.Background(), model, doc)
}

// Policy returns a model's rollout policy, or rollout.Default() when it has
// none; custom reports which.
func (d *Directory) Policy(model string) (p rollout.Policy, custom bool, err error) {
	doc, err := d.store.Policy(context.Background(), model)
	if err != nil {
		return p, false, err
	}
	if doc == nil {
		return rollout.Default(), false, nil
	}
	p, err = rollout.Parse(doc)
	return p, true, err
}
