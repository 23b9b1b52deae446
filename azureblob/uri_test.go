package azureblob

import (
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Path
	}{
		{"azureml://datastores/workspaceblobstore/paths/a/b/model.txt", Path{Datastore: "workspaceblobstore", Path: "a/b/model.txt"}},
		{"AzureML://Subscriptions/s/resourceGroups/r/Workspaces/w/datastores/d/paths/x%20y/m.txt",
			Path{Subscription: "s", ResourceGroup: "r", Workspace: "w", Datastore: "d", Path: "x y/m.txt"}},
		{"azureml://datastores/d/paths//m.txt?x=1", Path{Datastore: "d", Path: "m.txt"}},
	} {
		got, err := ParseURI(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		"", "https://a/b", "azureml://", "azureml://datastores/d", "azureml://datastores/d/paths/", "azureml://datastores/d/paths/dir/",
		"azureml://datastores//paths/m", "azureml://jobs/j/outputs/o/paths/m", "azureml://subscriptions/s/workspaces/w/datastores/d/paths/m",
		"azureml://datastores/d/paths/a/../m", "azureml://datastores/d/paths/%zz",
	} {
		if p, err := ParseURI(in); err == nil {
			t.Errorf("parse(%q) = %+v, want an error", in, p)
		}
	}
}

func TestBlobHost(t *testing.T) {
	for host, want := range map[string]bool{
		"acct.blob.core.windows.net": true, "ACCT.blob.core.windows.net:443": true, "acct.blob.core.chinacloudapi.cn": true,
		"blob.core.windows.net": false, "a.b.blob.core.windows.net": false, "acct.blob.core.windows.net.evil": false,
		"acct.dfs.core.windows.net": false, "evil.com": false,
	} {
		if got := IsBlobHost(host, DefaultSuffixes); got != want {
			t.Errorf("IsBlobHost(%q) = %v, want %v", host, got, want)
		}
	}
}

// FuzzParseURI: any input parses or is refused without panicking;
// what parses names a file without '..' and survives String and a second
// parse unchanged.
func FuzzParseURI(f *testing.F) {
	f.Add("azureml://datastores/workspaceblobstore/paths/a/b/model.txt")
	f.Add("azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/x%20y/m.txt")
	f.Add("azureml://jobs/j/outputs/o/paths/m")
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParseURI(in)
		if err != nil {
			return
		}
		if p.Path == "" || strings.HasSuffix(p.Path, "/") || strings.Contains("/"+p.Path+"/", "/../") {
			t.Fatalf("parse(%q) = %+v", in, p)
		}
		if p.Subscription == "" {
			p.Subscription, p.ResourceGroup, p.Workspace = "s", "r", "w"
		}
		if strings.ContainsAny(p.Subscription+p.ResourceGroup+p.Workspace+p.Datastore, "/?#") {
			return // not names Azure allows; String does not escape them
		}
		again, err := ParseURI(p.String())
		if err != nil || again != p {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", in, p, p.String(), again, err)
		}
	})
}
