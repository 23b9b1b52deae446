package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/modelfleet/modelfleet/edge"
)

// checkRouter makes sure the router is set up as the run claims before it
// is measured: a request without the API key refused, one with it answered
// and the answering version named.
func checkRouter(url string, sample []byte) error {
	resp, err := http.Post(url+"/score/"+modelName, "application/json", strings.NewReader(string(sample)))
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("router answered %d without an API key, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", url+"/score/"+modelName, strings.NewReader(string(sample)))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(edge.HeaderVersion) == "" {
		return fmt.Errorf("router answered %d (version %q) with the API key, want 200 and a version", resp.StatusCode, resp.Header.Get(edge.HeaderVersion))
	}
	return nil
}

// printRouterMetrics prints how the router split the run and what the
// shadow did, from its /metrics.
func printRouterMetrics(url string) {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		fmt.Printf("router   metrics: %v\n", err)
		return
	}
	defer resp.Body.Close()
	const m = `model="bearing-failure"`
	want := map[string]string{
		`modelfleet_edge_score_requests_total{` + m + `,outcome="ok",site="bench",version="1"}`:              "v1",
		`modelfleet_edge_score_requests_total{` + m + `,outcome="ok",site="bench",version="2"}`:              "v2",
		`modelfleet_edge_shadow_requests_total{` + m + `,outcome="ok",site="bench",version="3"}`:             "scored",
		`modelfleet_edge_shadow_dropped_total{` + m + `,site="bench",version="3"}`:                           "dropped",
		`modelfleet_edge_shadow_label_agreement_total{` + m + `,result="agree",site="bench",version="3"}`:    "agreed",
		`modelfleet_edge_shadow_label_agreement_total{` + m + `,result="disagree",site="bench",version="3"}`: "disagreed",
	}
	got := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if what, found := want[name]; ok && found {
			got[what], _ = strconv.ParseFloat(value, 64)
		}
	}
	total := got["v1"] + got["v2"]
	if total == 0 {
		fmt.Println("router   metrics: no request scored")
		return
	}
	fmt.Printf("router   split v1 %.1f%% v2 %.1f%% of %.0f (sticky keys); shadow v3 scored %.0f, dropped %.0f, agreed %.0f, disagreed %.0f\n",
		100*got["v1"]/total, 100*got["v2"]/total, total, got["scored"], got["dropped"], got["agreed"], got["disagreed"])
}
