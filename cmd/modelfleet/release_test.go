package main

import "testing"

func TestReleaseIDNamesModelAndWorkloadReleases(t *testing.T) {
	for _, tt := range []struct {
		args []string
		wl   string
		want string
	}{
		{[]string{"bearing-failure", "3"}, "", "release/bearing-failure/3"},
		{[]string{"bearing-failure"}, "bearing-failure-line:2", "release/bearing-failure/workload/bearing-failure-line/2"},
		{[]string{"release/bearing-failure/workload/bearing-failure-line/2"}, "", "release/bearing-failure/workload/bearing-failure-line/2"},
	} {
		if got, err := releaseID(tt.args, tt.wl); err != nil || got != tt.want {
			t.Errorf("releaseID(%q, %q) = %q, %v; want %q", tt.args, tt.wl, got, err, tt.want)
		}
	}
	for _, bad := range []struct {
		args []string
		wl   string
	}{{[]string{"bearing-failure"}, ""}, {[]string{"bearing-failure", "3"}, "line:2"}, {[]string{"bearing-failure"}, "line"}} {
		if got, err := releaseID(bad.args, bad.wl); err == nil {
			t.Errorf("releaseID(%q, %q) = %q, want an error", bad.args, bad.wl, got)
		}
	}
}
