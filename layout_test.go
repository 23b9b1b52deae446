package modelfleet_test

// The layout test enforces README.md's "## Layout" table: which folder may
// import which.
//
// The table has three columns: folder | what lives there | may import.
//
// The first column names one or more folders in backticks (`registry/`,
// `workload/`, `simulate/`); a file (`modelfleet.go`) names the package of
// its folder, so the root package's row is written with its files. Text
// outside backticks is ignored.
//
// A package belongs to the row of its folder or, if its folder is not
// listed, of its nearest listed parent folder (drivers/amlarc belongs to
// `drivers/`, registry/azureml to its own row `registry/azureml/`). The root
// row covers the root package only, never a subfolder. A package of the
// module that belongs to no row is a failure.
//
// The last column says what a package may import besides its own unit (its
// folder and that folder's unlisted subfolders), comma-separated:
//
//	`folder`               a folder exactly as written in the first column:
//	                       that folder and its unlisted subfolders
//	root                   the root package
//	none                   no package of this module
//	everything             any package of this module
//	standard library only  nothing but the standard library, transitively
//	—                      not checked
//
// Parenthesized words are remarks. Anything else is a failure, so a typo in
// the table cannot silently allow an import.
//
// What is checked: the direct imports (go list's Imports) of the non-test
// files of every package of the module, against the row of the importing
// package; third-party and standard library imports are not restricted,
// except by "standard library only", which is checked on the package's full
// dependency set (Deps). Imports made by _test.go files (TestImports,
// XTestImports) are not checked: tests may reach across layers to build
// fixtures, and test-only packages such as test/ import nothing in
// production. The packages are the ones `go list ./...` sees for this
// platform with no build tags (the module has no build-constrained files).
//
// The test also fails if a folder or file the table lists does not exist,
// so the table cannot keep rows for folders that were removed.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestLayout checks the tree against README.md's Layout table.
func TestLayout(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	table, err := parseLayout(string(readme))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	for _, r := range table.rows {
		for _, p := range r.paths {
			if _, err := os.Stat(filepath.FromSlash(p)); err != nil {
				t.Errorf("README.md:%d: the Layout table lists %s, which does not exist; remove or rename the row", r.line, p)
			}
		}
	}

	module, err := modulePath("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := goListDeps()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range checkLayout(table, module, pkgs) {
		t.Error(v)
	}
}

// TestLayoutChecker shows that the checker fails on a forbidden import, on
// a package no row covers, and on a non-standard dependency of a "standard
// library only" row, and passes a graph that keeps to the table.
func TestLayoutChecker(t *testing.T) {
	const readme = `# x

## Layout

Some prose.

| folder | what lives there | may import |
|---|---|---|
| ` + "`x.go`" + ` | the root package | standard library only |
| ` + "`a/`" + ` | a | root, ` + "`b`" + ` (types only) |
| ` + "`a/own/`" + ` | a subfolder with its own row | ` + "`b`" + ` |
| ` + "`b/`, `c/`" + ` | b and c | none |
| ` + "`app/`" + ` | wiring | everything |
| ` + "`test/`" + ` | not checked | — |
| ` + "`docs/`" + ` | no Go | — |

## Next
`
	table, err := parseLayout(readme)
	if err != nil {
		t.Fatal(err)
	}
	const m = "example.com/m"
	std := func(paths ...string) []goPackage {
		var ps []goPackage
		for _, p := range paths {
			ps = append(ps, goPackage{ImportPath: p, Standard: true})
		}
		return ps
	}
	good := append(std("fmt", "errors"),
		goPackage{ImportPath: m, Imports: []string{"fmt"}, Deps: []string{"errors", "fmt"}},
		goPackage{ImportPath: m + "/a", Imports: []string{"fmt", m, m + "/a/sub", m + "/b", "example.org/third"}},
		goPackage{ImportPath: m + "/a/sub", Imports: []string{m + "/a"}},                  // own unit: a/ and its unlisted subfolders
		goPackage{ImportPath: m + "/a/own", Imports: []string{m + "/b", m + "/b/deeper"}}, // b's unit includes b/deeper
		goPackage{ImportPath: m + "/b", Imports: []string{"example.org/third"}},
		goPackage{ImportPath: m + "/b/deeper"},
		goPackage{ImportPath: m + "/c", Imports: []string{"fmt"}},
		goPackage{ImportPath: m + "/app", Imports: []string{m, m + "/a", m + "/a/own", m + "/c"}},
		goPackage{ImportPath: m + "/test/e2e", Imports: []string{m + "/app"}},
		goPackage{ImportPath: "example.org/third", Imports: []string{"fmt"}},
	)
	if v := checkLayout(table, m, good); len(v) != 0 {
		t.Fatalf("a graph that keeps to the table: got violations\n%s", strings.Join(v, "\n"))
	}

	bad := append(std("fmt", "errors"),
		goPackage{ImportPath: m, Imports: []string{"example.org/third"}, Deps: []string{"example.org/third", "fmt"}},
		goPackage{ImportPath: m + "/a", Imports: []string{m + "/c"}},     // c is not in a's row
		goPackage{ImportPath: m + "/a/own", Imports: []string{m + "/a"}}, // a/own has its own row: a is not implicit
		goPackage{ImportPath: m + "/b", Imports: []string{m + "/c"}},     // same row, other folder: not implicit
		goPackage{ImportPath: m + "/c"},
		goPackage{ImportPath: m + "/z/y", Imports: []string{"fmt"}}, // no row
		goPackage{ImportPath: m + "/app", Imports: []string{m + "/z/y"}},
		goPackage{ImportPath: "example.org/third", Imports: []string{"fmt"}},
	)
	want := []string{
		"a imports example.com/m/c, but README's Layout table allows a/: root, b (types only) (add `c` to that row, or drop the import)",
		"a/own imports example.com/m/a, but README's Layout table allows a/own/: b (add `a` to that row, or drop the import)",
		"b imports example.com/m/c, but README's Layout table allows b/, c/: none (add `c` to that row, or drop the import)",
		"the root package depends on example.org/third, but README's Layout table allows x.go: standard library only",
		"z/y (example.com/m/z/y) is under no row of README's Layout table: add a row for `z/y/` or a parent folder",
	}
	got := checkLayout(table, m, bad)
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n got:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestLayoutParseErrors shows that a table the checker cannot read exactly is
// a failure, not a silent pass.
func TestLayoutParseErrors(t *testing.T) {
	head := "## Layout\n\n| folder | what lives there | may import |\n|---|---|---|\n"
	for _, tc := range []struct{ name, readme, want string }{
		{"no section", "# x\n", `no "## Layout" section`},
		{"no table", "## Layout\n\nprose\n## Next\n", `no table under "## Layout"`},
		{"wrong header", "## Layout\n\n| folder | may import |\n|---|---|\n", `header must be "| folder | what lives there | may import |"`},
		{"unknown word", head + "| `a/` | a | domain |\n", `unknown word "domain"`},
		{"bare folder", head + "| `a/` | a | b |\n| `b/` | b | none |\n", `unknown word "b"`},
		{"unlisted folder", head + "| `a/` | a | `b` |\n", "may import `b`, which is not a folder of the table"},
		{"everything in a list", head + "| `a/` | a | root, everything |\n", `"everything" must stand alone`},
		{"twice", head + "| `a/` | a | root |\n| `a/` | again | root |\n", "`a/` is listed twice"},
		{"no folder", head + "| a | a | root |\n", "no folder in backticks"},
		{"empty item", head + "| `a/` | a | root, |\n", "empty item"},
		{"columns", head + "| `a/` | a |\n", "3 columns"},
	} {
		_, err := parseLayout(tc.readme)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// allowKind is what the "may import" column of a row says.
type allowKind int

const (
	allowList       allowKind = iota // root and/or folders; none is the empty list
	allowEverything                  // everything
	allowStdOnly                     // standard library only
	allowUnchecked                   // —
)

type layoutRow struct {
	line    int      // in README.md
	label   string   // the first column without backticks, for messages
	paths   []string // the first column's entries, as paths: "registry/azureml", "modelfleet.go"
	folders []string // the folders of the row: "registry/azureml", "." for the root package
	may     string   // the last column without backticks, for messages
	kind    allowKind
	root    bool     // allowList: may import the root package
	allow   []string // allowList: folders it may import (each one a folder of some row)
}

type layoutTable struct {
	rows   []*layoutRow
	folder map[string]*layoutRow // folder ("." for the root package) → its row
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	remark     = regexp.MustCompile(`\([^()]*\)`)
)

// parseLayout reads the first table under the "## Layout" heading.
func parseLayout(readme string) (*layoutTable, error) {
	lines := strings.Split(readme, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "## Layout" })
	if start < 0 {
		return nil, errors.New(`no "## Layout" section`)
	}
	var table []int // line indexes of the table
	for i := start + 1; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if strings.HasPrefix(l, "|") {
			table = append(table, i)
		} else if len(table) > 0 || strings.HasPrefix(l, "#") {
			break
		}
	}
	if len(table) == 0 {
		return nil, errors.New(`no table under "## Layout"`)
	}
	header := cells(lines[table[0]])
	if len(header) != 3 || header[0] != "folder" || header[2] != "may import" || len(table) < 2 {
		return nil, fmt.Errorf(`line %d: the Layout table's header must be "| folder | what lives there | may import |" followed by "|---|---|---|"`, table[0]+1)
	}

	t := &layoutTable{folder: map[string]*layoutRow{}}
	for _, i := range table[2:] {
		c := cells(lines[i])
		if len(c) != 3 {
			return nil, fmt.Errorf("line %d: a row of the Layout table must have 3 columns, not %d", i+1, len(c))
		}
		r := &layoutRow{line: i + 1, label: strings.ReplaceAll(c[0], "`", ""), may: strings.ReplaceAll(c[2], "`", "")}
		for _, m := range backticked.FindAllStringSubmatch(c[0], -1) {
			p := strings.TrimSuffix(strings.TrimSpace(m[1]), "/")
			if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "..") {
				return nil, fmt.Errorf("line %d: %q is not a folder or file of the repository", i+1, m[1])
			}
			folder := p
			if strings.HasSuffix(p, ".go") {
				folder = path.Dir(p)
			}
			r.paths = append(r.paths, p)
			if slices.Contains(r.folders, folder) {
				continue // modelfleet.go, desired.go
			}
			if t.folder[folder] != nil {
				return nil, fmt.Errorf("line %d: `%s/` is listed twice in the Layout table (also on line %d)", i+1, folder, t.folder[folder].line)
			}
			t.folder[folder] = r
			r.folders = append(r.folders, folder)
		}
		if len(r.folders) == 0 {
			return nil, fmt.Errorf("line %d: no folder in backticks in the first column", i+1)
		}
		if err := r.parseMay(c[2]); err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		t.rows = append(t.rows, r)
	}
	for _, r := range t.rows {
		for _, f := range r.allow {
			if _, ok := t.folder[f]; !ok || f == "." {
				return nil, fmt.Errorf("line %d: the row %s may import `%s`, which is not a folder of the table", r.line, r.label, f)
			}
		}
	}
	return t, nil
}

// parseMay reads the "may import" column.
func (r *layoutRow) parseMay(cell string) error {
	s := strings.TrimSpace(remark.ReplaceAllString(cell, ""))
	switch s {
	case "—", "-":
		r.kind = allowUnchecked
		return nil
	case "everything":
		r.kind = allowEverything
		return nil
	case "standard library only":
		r.kind = allowStdOnly
		return nil
	case "none":
		r.kind = allowList
		return nil
	}
	r.kind = allowList
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			return fmt.Errorf("empty item in %q", cell)
		case item == "root":
			r.root = true
		case strings.HasPrefix(item, "`") && strings.HasSuffix(item, "`") && len(item) > 2 && strings.Count(item, "`") == 2:
			r.allow = append(r.allow, strings.TrimSuffix(item[1:len(item)-1], "/"))
		case item == "—" || item == "-" || item == "everything" || item == "standard library only" || item == "none":
			return fmt.Errorf("%q must stand alone in the may-import column, not in a list", item)
		default:
			return fmt.Errorf("unknown word %q in %q: write folders in backticks (`fleet`), or root, none, everything, standard library only, —", item, cell)
		}
	}
	return nil
}

// cells splits a Markdown table row.
func cells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	c := strings.Split(line, "|")
	for i := range c {
		c[i] = strings.TrimSpace(c[i])
	}
	return c
}

// unit is the row a folder belongs to, and the listed folder it belongs
// through: its own, or its nearest listed parent. The root row covers the
// root package only.
func (t *layoutTable) unit(rel string) (*layoutRow, string) {
	if rel == "." {
		return t.folder["."], "."
	}
	for d := rel; d != "." && d != "/"; d = path.Dir(d) {
		if r := t.folder[d]; r != nil {
			return r, d
		}
	}
	return nil, ""
}

// goPackage is what the checker needs of `go list -json`.
type goPackage struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Deps       []string
}

// checkLayout returns one message per violation, sorted.
func checkLayout(t *layoutTable, module string, pkgs []goPackage) []string {
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	name := func(rel string) string {
		if rel == "." {
			return "the root package"
		}
		return rel
	}
	std := map[string]bool{}
	for _, p := range pkgs {
		if p.Standard {
			std[p.ImportPath] = true
		}
	}

	var out []string
	for _, p := range pkgs {
		pr, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		row, unit := t.unit(pr)
		if row == nil {
			out = append(out, fmt.Sprintf("%s (%s) is under no row of README's Layout table: add a row for `%s/` or a parent folder", name(pr), p.ImportPath, pr))
			continue
		}
		switch row.kind {
		case allowUnchecked, allowEverything:
			continue
		case allowStdOnly:
			for _, d := range p.Deps {
				if !std[d] {
					out = append(out, fmt.Sprintf("%s depends on %s, but README's Layout table allows %s: standard library only", name(pr), d, row.label))
				}
			}
			continue
		}
		for _, imp := range p.Imports {
			ir, ok := rel(imp)
			if !ok {
				continue // standard library or another module
			}
			_, iunit := t.unit(ir)
			switch {
			case iunit != "" && iunit == unit:
			case ir == "." && row.root:
			case iunit != "" && slices.Contains(row.allow, iunit):
			default:
				hint := "`" + iunit + "`"
				if ir == "." {
					hint = "root"
				} else if iunit == "" {
					hint = "`" + ir + "` (a new row)"
				}
				out = append(out, fmt.Sprintf("%s imports %s, but README's Layout table allows %s: %s (add %s to that row, or drop the import)", name(pr), imp, row.label, row.may, hint))
			}
		}
	}
	slices.Sort(out)
	return out
}

// goListDeps runs go list once over the module, with the standard library
// and third-party packages it depends on (for their Standard field).
func goListDeps() ([]goPackage, error) {
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports,Deps", "./...")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []goPackage
	for dec := json.NewDecoder(&stdout); ; {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, errors.New("go list: no packages")
	}
	return pkgs, nil
}

// modulePath reads the module line of go.mod.
func modulePath(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", gomod)
}
