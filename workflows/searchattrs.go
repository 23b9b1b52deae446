package workflows

import "go.temporal.io/sdk/temporal"

// Custom search attributes, registered with the Temporal server at start (the
// dev stack passes them to `temporal server start-dev --search-attribute`) so
// the Temporal UI and `modelfleet release list` can filter releases by model,
// version, stage and site.
var (
	ModelAttr   = temporal.NewSearchAttributeKeyKeyword("ModelfleetModel")
	VersionAttr = temporal.NewSearchAttributeKeyKeyword("ModelfleetVersion")
	StageAttr   = temporal.NewSearchAttributeKeyKeyword("ModelfleetStage")
	SitesAttr   = temporal.NewSearchAttributeKeyKeywordList("ModelfleetSite")
)

// SearchAttributeTypes lists the custom attributes and their Temporal types,
// in the `name=Type` form the Temporal CLI accepts.
func SearchAttributeTypes() []string {
	return []string{
		ModelAttr.GetName() + "=Keyword",
		VersionAttr.GetName() + "=Keyword",
		StageAttr.GetName() + "=Keyword",
		SitesAttr.GetName() + "=KeywordList",
	}
}
