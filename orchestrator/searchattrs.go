package orchestrator

import (
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet"
)

// Custom search attributes, registered with the Temporal server at start (the
// dev stack passes them to `temporal server start-dev --search-attribute`) so
// the Temporal UI and `modelfleet release list` can filter releases by model,
// version, stage and site. The orchestrator sets them when it starts a
// workflow; the workflows keep them up to date.
var (
	ModelAttr   = temporal.NewSearchAttributeKeyKeyword(modelfleet.SearchAttrModel)
	VersionAttr = temporal.NewSearchAttributeKeyKeyword(modelfleet.SearchAttrVersion)
	StageAttr   = temporal.NewSearchAttributeKeyKeyword(modelfleet.SearchAttrStage)
	SitesAttr   = temporal.NewSearchAttributeKeyKeywordList(modelfleet.SearchAttrSites)
	// WorkloadAttr ("name:version") is set by workload releases only.
	WorkloadAttr = temporal.NewSearchAttributeKeyKeyword(modelfleet.SearchAttrWorkload)
)

// SearchAttributeTypes lists the custom attributes and their Temporal types,
// in the `name=Type` form the Temporal CLI accepts.
func SearchAttributeTypes() []string {
	return []string{
		ModelAttr.GetName() + "=Keyword",
		VersionAttr.GetName() + "=Keyword",
		StageAttr.GetName() + "=Keyword",
		SitesAttr.GetName() + "=KeywordList",
		WorkloadAttr.GetName() + "=Keyword",
	}
}
