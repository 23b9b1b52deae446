package workflows

import (
	"go.temporal.io/sdk/temporal"

	"github.com/modelfleet/modelfleet/workflows/wfapi"
)

// Custom search attributes, registered with the Temporal server at start (the
// dev stack passes them to `temporal server start-dev --search-attribute`) so
// the Temporal UI and `modelfleet release list` can filter releases by model,
// version, stage and site.
var (
	ModelAttr   = temporal.NewSearchAttributeKeyKeyword(wfapi.SearchAttrModel)
	VersionAttr = temporal.NewSearchAttributeKeyKeyword(wfapi.SearchAttrVersion)
	StageAttr   = temporal.NewSearchAttributeKeyKeyword(wfapi.SearchAttrStage)
	SitesAttr   = temporal.NewSearchAttributeKeyKeywordList(wfapi.SearchAttrSites)
	// WorkloadAttr ("name:version") is set by workload releases only.
	WorkloadAttr = temporal.NewSearchAttributeKeyKeyword(wfapi.SearchAttrWorkload)
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
