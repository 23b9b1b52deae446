package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// No Bicep parser can be had offline (the compiler is a .NET tool fetched
// from outside the package registries this project uses), so this is a
// structural check, not a compile: delimiters balance outside strings and
// comments, resource types carry an API version, modules exist and get
// exactly the parameters they declare, every parameter is used.
func TestBicepStructure(t *testing.T) {
	files, _ := filepath.Glob("../bicep/*.bicep")
	if len(files) == 0 {
		t.Fatal("no bicep files")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		code := stripBicep(t, f, string(src))
		checkBalanced(t, f, code)
		for _, m := range regexp.MustCompile(`(?m)^resource \w+ '([^']*)'`).FindAllStringSubmatch(string(src), -1) {
			if !regexp.MustCompile(`^Microsoft\.\w+/[\w/]+@\d{4}-\d{2}-\d{2}(-preview)?$`).MatchString(m[1]) {
				t.Errorf("%s: resource type %q lacks a well-formed API version", f, m[1])
			}
		}
		params := declaredParams(string(src))
		for p := range params {
			if n := len(regexp.MustCompile(`\b`+p+`\b`).FindAllString(code, -1)); n < 2 {
				t.Errorf("%s: param %s is never used", f, p)
			}
		}
		for _, m := range regexp.MustCompile(`(?s)module \w+ '([^']+)' = \{.*?params: \{(.*?)\n  \}`).FindAllStringSubmatch(string(src), -1) {
			mod := filepath.Join(filepath.Dir(f), m[1])
			msrc, err := os.ReadFile(mod)
			if err != nil {
				t.Errorf("%s: module %s: %v", f, m[1], err)
				continue
			}
			declared := declaredParams(string(msrc))
			passed := map[string]bool{}
			for _, p := range regexp.MustCompile(`(?m)^\s+(\w+):`).FindAllStringSubmatch(m[2], -1) {
				passed[p[1]] = true
				if _, ok := declared[p[1]]; !ok {
					t.Errorf("%s: module %s has no param %s", f, m[1], p[1])
				}
			}
			for p, hasDefault := range declared {
				if !hasDefault && !passed[p] {
					t.Errorf("%s: module %s needs param %s", f, m[1], p)
				}
			}
		}
		for _, g := range regexp.MustCompile(`var \w+ = '([0-9a-f-]{30,})'`).FindAllStringSubmatch(string(src), -1) {
			if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`).MatchString(g[1]) {
				t.Errorf("%s: role definition id %q is not a GUID", f, g[1])
			}
		}
	}
	// What the brief asks of the Azure side is there.
	all := ""
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all += string(b)
	}
	for _, want := range []string{"Microsoft.EventGrid/systemTopics@", "azureml_modelmonitor_threshold_breached", "Microsoft.MachineLearningServices.RunStatusChanged",
		"requiresDuplicateDetection: true", "deadLetteringOnMessageExpiration: true", "Microsoft.Authorization/roleAssignments@",
		"Microsoft.DBforPostgreSQL/flexibleServers/administrators@", "activeDirectoryAuth"} {
		if !strings.Contains(all, want) {
			t.Errorf("bicep lacks %q", want)
		}
	}
}

// declaredParams maps each param to whether it has a default.
func declaredParams(src string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^param (\w+) \w+( =)?`).FindAllStringSubmatch(src, -1) {
		out[m[1]] = m[2] != ""
	}
	return out
}

// stripBicep blanks comments and string contents (keeping interpolations'
// expressions), so what remains is code.
func stripBicep(t *testing.T, f, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "//"):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				t.Fatalf("%s: unterminated comment", f)
			}
			i += end + 4
		case s[i] == '\'':
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' {
					i++
				} else if strings.HasPrefix(s[i:], "${") {
					end := strings.Index(s[i:], "}")
					if end < 0 {
						t.Fatalf("%s: unterminated interpolation", f)
					}
					b.WriteString(" " + s[i+2:i+end] + " ")
					i += end
				} else if s[i] == '\n' {
					t.Fatalf("%s: newline in a string", f)
				}
			}
			if i >= len(s) {
				t.Fatalf("%s: unterminated string", f)
			}
			b.WriteString("''")
			i++
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String()
}

func checkBalanced(t *testing.T, f, code string) {
	var stack []rune
	pair := map[rune]rune{'}': '{', ']': '[', ')': '('}
	line := 1
	for _, r := range code {
		switch r {
		case '\n':
			line++
		case '{', '[', '(':
			stack = append(stack, r)
		case '}', ']', ')':
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				t.Fatalf("%s:%d: unbalanced %q", f, line, r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 {
		t.Fatalf("%s: %d unclosed delimiters", f, len(stack))
	}
}
