package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"

	"github.com/modelfleet/modelfleet/auth"
)

// chromium finds the browser the dashboard tests drive: Debian's
// chromium (`make deps`). Without it the test skips, naming the package,
// or fails under MODELFLEET_REQUIRE_DEPS=1 (CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("MODELFLEET_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no headless browser: install the Debian package chromium (`make deps`), or set MODELFLEET_CHROMIUM"
	if os.Getenv("MODELFLEET_REQUIRE_DEPS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// screenshotDir is where the tests write the README's screenshots:
// docs/img with MODELFLEET_SCREENSHOTS=1, nowhere otherwise (a normal
// run leaves the repository alone).
func screenshotDir(t *testing.T) string {
	if os.Getenv("MODELFLEET_SCREENSHOTS") != "1" {
		return ""
	}
	return filepath.Join(repoRoot(t), "docs", "img")
}

// browserFor starts one headless Chromium for the test.
func browserFor(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.WindowSize(1280, 900),
		// The stack's gateway serves a certificate of its own CA.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root (CI's containers).
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// person is one signed-in browser session (its own cookie jar).
type person struct {
	t     *testing.T
	ctx   context.Context
	token string
	base  string
}

// signIn opens a browser context of its own and signs in through the
// login page with the stack's credentials file.
func signIn(t *testing.T, browser context.Context, s *stack, file string) *person {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab, which lives as long as that run's
	// context: this one, not a step's with a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(s.dataDir, "credentials", file))
	if err != nil {
		t.Fatal(err)
	}
	p := &person{t: t, ctx: ctx, token: strings.TrimSpace(string(tok)), base: s.gateway}
	p.do(
		chromedp.Navigate(s.gateway+"/ui/fleet"),
		// Not signed in: the dashboard sends the browser to its login.
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), p.token),
		chromedp.Click(chromedp.CSS(`form.login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.who`)),
	)
	return p
}

func (p *person) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.documentElement.outerHTML`))
		p.t.Fatalf("%v; the page at %s", err, tail(loc, 40))
	}
}

// text reads an element's text by script, in one step: the live stream
// may replace the element between a query and a read.
func (p *person) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel)))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func (p *person) eval(js string, out any) {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[json.RawMessage](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal(v, out); err != nil {
		p.t.Fatalf("evaluate %s: %v: %s", js, err, v)
	}
}

// waitText waits for the element's text to contain want, the page left
// alone: what changes arrives by the live stream. It asks again after a
// navigation (a form's redirect) interrupts it.
func (p *person) waitText(sel, want string, timeout time.Duration) {
	p.t.Helper()
	js := fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || "(none)"`, sel)
	deadline := time.Now().Add(timeout)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		cancel()
		if err == nil {
			if got = s; strings.Contains(s, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("waiting %v for %s to show %q; it shows %q", timeout, sel, want, got)
}

func (p *person) screenshot(dir, name string) {
	p.t.Helper()
	if dir == "" {
		return
	}
	b, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// TestDashboardInABrowser drives the dashboard in headless Chromium
// against the real stack: a gated release's page, open in a viewer's
// browser, follows the release live; the viewer sees no button and a
// forged POST of theirs is refused; the approver reaches the approve
// button by keyboard, and their click passes the gate and the workflow
// records who; the fleet page lists the three sites with the version
// each serves; after `modelfleet simulate drift` the drift page shows
// site-1's drifting feature and the fleet page marks site-1; on every
// page the accessibility tree names what a screen reader and a keyboard
// need and the text is readable (WCAG AA contrast).
func TestDashboardInABrowser(t *testing.T) {
	s := newStack(t)
	// Short monitoring windows, so that site-1's line drifts within the
	// test: 2 s signal windows, a minute of lookback (each site's
	// reference is its first half-minute), and no retraining meanwhile.
	s.extra = []string{"--signal-interval", "2s", "--monitor-lookback", "60s", "--monitor-min-rows", "300", "--retrain-debounce", "10m"}
	browser := browserFor(t)
	s.start()
	shots := screenshotDir(t)
	model := filepath.Join(repoRoot(t), "examples", "bearing-failure", "model.txt")
	// The model the simulated lines feed, first: its sites build their
	// drift references while the gated release below runs.
	s.mustCLI("model", "register", "--name", "bearing-failure", "--version", "1", "--file", model)
	policy := filepath.Join(t.TempDir(), "gated.yaml")
	if err := os.WriteFile(policy, []byte(`
waves:
  - {name: canary, select: {ring: canary}, bake: 1s}
  - {name: fleet, bake: 1s}
approval: {after: [canary], timeout: 10m}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustCLI("model", "register", "--name", "press", "--version", "1", "--file", model, "--policy", policy)
	waitState(t, s, "press", "1", "awaiting-approval")

	viewer := signIn(t, browser, s, "viewer.token")
	viewer.do(chromedp.Navigate(s.gateway + "/ui/releases/press/1"))
	viewer.waitText("#release-state", "awaiting-approval", 30*time.Second)
	viewer.waitText(`tr[data-site="site-1"]`, "canary", 30*time.Second)
	var buttons int
	viewer.eval(`document.querySelectorAll("main button").length`, &buttons)
	if buttons != 0 {
		t.Errorf("a viewer sees %d control buttons", buttons)
	}
	// Forged: the viewer's own session and CSRF token, and the approve
	// the page never offered them.
	var forged struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	viewer.eval(fmt.Sprintf(`fetch("/ui/releases/press/1/control", {method: "POST", body: new URLSearchParams({action: "approve", reason: "forged", csrf: %q})}).then(async r => ({status: r.status, body: await r.text()}))`, auth.CSRFToken(viewer.token)), &forged)
	if forged.Status != 403 || !strings.Contains(forged.Body, "releases.approve") {
		t.Errorf("a viewer's forged approve: %d %s", forged.Status, forged.Body)
	}

	// The newcomer's identity approves fleet-wide, from the keyboard.
	approver := signIn(t, browser, s, "token")
	approver.do(chromedp.Navigate(s.gateway + "/ui/releases/press/1"))
	approver.waitText("#release-state", "awaiting-approval", 30*time.Second)
	approver.waitText(`tr[data-site="site-1"]`, "canary", 30*time.Second)
	approver.screenshot(shots, "ui-release.png")
	checkAccessibility(t, approver, "release")
	tabTo(t, approver, `button[value="approve"]`, 30)
	approver.do(chromedp.SetValue(chromedp.ID("gate-reason"), "canary looks fine"))
	// Enter on the focused button: what a keyboard user does.
	approver.do(chromedp.Evaluate[chromedp.Void](`document.querySelector('button[value="approve"]').focus()`))
	approver.do(chromedp.KeyEvent("\r"))
	approver.waitText(".flash", "approve sent as dev@modelfleet.local", 30*time.Second)
	// The viewer's page, never reloaded, follows the release over its
	// live stream to its end.
	viewer.waitText("#release-state", "succeeded", 2*time.Minute)
	st := waitState(t, s, "press", "1", "succeeded")
	controls := fmt.Sprint(st["controls"])
	if !strings.Contains(controls, "dev@modelfleet.local") || !strings.Contains(controls, "canary looks fine") || !strings.Contains(controls, "verified:true") {
		t.Errorf("controls = %s, want the approval verified with who and why", controls)
	}
	if strings.Contains(controls, "forged") {
		t.Errorf("the forged approve reached the workflow: %s", controls)
	}

	// The fleet: three sites, each serving press:1.
	approver.do(chromedp.Navigate(s.gateway + "/ui/fleet"))
	for _, site := range []string{"site-1", "site-2", "site-3"} {
		approver.waitText(fmt.Sprintf(`tr[data-site=%q]`, site), "press:1", 30*time.Second)
	}
	var rows int
	approver.eval(`document.querySelectorAll("tr[data-site]").length`, &rows)
	if rows != 3 {
		t.Errorf("fleet page lists %d sites, want 3", rows)
	}
	if got := approver.text("table.counts tbody"); !strings.Contains(got, "press") || !strings.Contains(got, "3") {
		t.Errorf("per-version counts: %q, want press 1 on 3 sites", got)
	}
	checkAccessibility(t, approver, "fleet")
	// The tiles view: the same sites, as readable.
	approver.do(chromedp.Navigate(s.gateway + "/ui/fleet?view=tiles"))
	approver.waitText(`li.tile[data-site="site-3"]`, "press:1", 30*time.Second)
	checkAccessibility(t, approver, "tiles")

	// Drift: once site-1 has its reference, its line drifts; the drift
	// page shows the feature, the fleet page the site.
	waitFor(t, 2*time.Minute, "site-1's drift reference", func() error {
		rep, err := s.monitor()
		if err != nil {
			return err
		}
		for _, v := range rep.Verdicts {
			if v.Site == "site-1" && !v.Insufficient && len(v.Features) > 0 {
				return nil
			}
		}
		return fmt.Errorf("no judged verdict of site-1 yet (stats %v)", rep.Stats)
	})
	s.mustCLI("simulate", "drift", "--site", "site-1", "--model", "bearing-failure", "--shift", "2", "--simulator-url", s.simulators[0])
	approver.do(chromedp.Navigate(s.gateway + "/ui/drift"))
	approver.waitText(`section[data-site="site-1"] h2`, "drifting", 2*time.Minute)
	if got := approver.text(`section[data-site="site-1"] tr.breached th`); !strings.Contains(got, "breached") {
		t.Errorf("site-1's drift section names no breached feature: %q", got)
	}
	approver.screenshot(shots, "ui-drift.png")
	checkAccessibility(t, approver, "drift")
	approver.do(chromedp.Navigate(s.gateway + "/ui/fleet"))
	approver.waitText(`tr[data-site="site-1"]`, "drifting", 30*time.Second)
	approver.screenshot(shots, "ui-fleet.png")

	// Queues and audit: the sites' signal messages went through the
	// queue; the audit (the newcomer is an admin too) names the viewer's
	// forged approve, refused.
	approver.do(chromedp.Navigate(s.gateway + "/ui/queues"))
	approver.waitText("h1", "Queues", 30*time.Second)
	var sent int
	approver.eval(`Number(document.querySelector("#queue-sent").textContent)`, &sent)
	if sent == 0 {
		t.Errorf("the queues page counts no signal message sent")
	}
	if got := approver.text(`section[aria-labelledby="audit"]`); !strings.Contains(got, "viewer@modelfleet.local") || !strings.Contains(got, "releases.approve") {
		t.Errorf("the audit lacks the viewer's refused approve: %q", tail(got, 10))
	}
	approver.screenshot(shots, "ui-queues.png")
	checkAccessibility(t, approver, "queues")
}

// tabTo presses Tab from the top of the page until sel has the focus, at
// most max times: the control is reachable by keyboard, in an order
// that passes its label first.
func tabTo(t *testing.T, p *person, sel string, max int) {
	t.Helper()
	var seen []string
	for range max {
		p.do(chromedp.KeyEvent("\t"))
		var at struct {
			Match bool   `json:"match"`
			What  string `json:"what"`
		}
		p.eval(fmt.Sprintf(`(() => { const a = document.activeElement; return {match: a.matches(%q), what: a.tagName + " " + (a.id || a.getAttribute("value") || a.textContent.trim()).slice(0, 40)}; })()`, sel), &at)
		seen = append(seen, at.What)
		if at.Match {
			return
		}
	}
	t.Errorf("%d Tabs never reach %s; they visit %q", max, sel, seen)
}

// contrastJS measures, for every element with text of its own that is
// rendered, the WCAG 2 contrast ratio of its colour against the
// background it sits on (composited up the ancestors, white at the top),
// and returns those under 4.5:1.
const contrastJS = `(() => {
  const parse = c => { const m = c.match(/[\d.]+/g).map(Number); return {r: m[0], g: m[1], b: m[2], a: m.length > 3 ? m[3] : 1}; };
  const over = (top, bottom) => ({r: top.r*top.a + bottom.r*(1-top.a), g: top.g*top.a + bottom.g*(1-top.a), b: top.b*top.a + bottom.b*(1-top.a), a: 1});
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v/12.92 : Math.pow((v+0.055)/1.055, 2.4); }; return 0.2126*f(c.r) + 0.7152*f(c.g) + 0.0722*f(c.b); };
  const background = el => {
    const chain = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) chain.push(parse(getComputedStyle(e).backgroundColor));
    let bg = {r: 255, g: 255, b: 255, a: 1};
    for (let i = chain.length - 1; i >= 0; i--) bg = over(chain[i], bg);
    return bg;
  };
  const out = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim() !== "");
    if (!own || el.getClientRects().length === 0) continue;
    const st = getComputedStyle(el);
    if (st.visibility === "hidden" || el.closest("svg, .skip:not(:focus), details:not([open]) > :not(summary)")) continue;
    const bg = background(el), fg = over(parse(st.color), bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    checked++;
    if (ratio < 4.5) out.push(el.tagName.toLowerCase() + (el.className ? "." + String(el.className).replace(/ /g, ".") : "") + " " + JSON.stringify(el.textContent.trim().slice(0, 30)) + " " + st.color + " on " + JSON.stringify(bg) + " = " + ratio.toFixed(2));
  }
  return {checked, failing: out};
})()`

// checkAccessibility reads the page's accessibility tree as a screen
// reader would get it: one main landmark, a named navigation, headings,
// every button, link and field named, table headers; the text's contrast
// against its background is at least 4.5:1; and a first Tab lands on
// the skip link.
func checkAccessibility(t *testing.T, p *person, page string) {
	t.Helper()
	tree, err := chromedp.Run(p.ctx, func(ctx context.Context, tg *chromedp.Target) (accessibility.GetFullAXTreeResult, error) {
		return cdp.Call(ctx, tg, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	})
	if err != nil {
		t.Fatal(err)
	}
	str := func(v *accessibility.Value) string {
		if v == nil {
			return ""
		}
		var s string
		_ = json.Unmarshal(v.Value, &s)
		return s
	}
	roles := map[string][]string{}
	for _, n := range tree.Nodes {
		if n.Ignored {
			continue
		}
		role, name := str(n.Role), str(n.Name)
		roles[role] = append(roles[role], name)
	}
	if len(roles["main"]) != 1 {
		t.Errorf("%s: main landmarks: %d, want 1", page, len(roles["main"]))
	}
	if !slices.Contains(roles["navigation"], "Pages") {
		t.Errorf("%s: navigation landmarks %q, want Pages", page, roles["navigation"])
	}
	if len(roles["heading"]) < 2 {
		t.Errorf("%s: headings %q", page, roles["heading"])
	}
	for _, role := range []string{"button", "link", "combobox", "textbox", "img"} {
		for _, name := range roles[role] {
			if strings.TrimSpace(name) == "" {
				t.Errorf("%s: a %s without an accessible name", page, role)
			}
		}
	}
	switch page {
	case "fleet":
		if !slices.Contains(roles["navigation"], "Pages of sites") || !slices.Contains(roles["heading"], "What runs where") {
			t.Errorf("fleet: navigation %q, headings %q", roles["navigation"], roles["heading"])
		}
		for _, want := range []string{"Model", "Version", "Label", "Status", "Group by", "Show as"} {
			if !slices.Contains(roles["combobox"], want) && !slices.Contains(roles["textbox"], want) {
				t.Errorf("fleet: filter %q has no labelled control (comboboxes %q, textboxes %q)", want, roles["combobox"], roles["textbox"])
			}
		}
		if len(roles["columnheader"]) < 6 || len(roles["rowheader"]) != 3 {
			t.Errorf("fleet: table headers: %d column, %d row (sites), want >= 6 and 3", len(roles["columnheader"]), len(roles["rowheader"]))
		}
	case "release":
		for _, want := range []string{"Approve", "Reject"} {
			if !slices.Contains(roles["button"], want) {
				t.Errorf("release: buttons %q, want %s", roles["button"], want)
			}
		}
		if !slices.Contains(roles["textbox"], "Reason") {
			t.Errorf("release: the gate's reason field is not labelled: textboxes %q", roles["textbox"])
		}
	}
	var contrast struct {
		Checked int      `json:"checked"`
		Failing []string `json:"failing"`
	}
	p.eval(contrastJS, &contrast)
	if contrast.Checked < 10 {
		t.Errorf("%s: contrast checked on %d elements only", page, contrast.Checked)
	}
	for _, f := range contrast.Failing {
		t.Errorf("%s: text contrast under 4.5:1: %s", page, f)
	}
	// Keyboard: the first Tab on the freshly loaded page reaches the skip
	// link.
	p.do(chromedp.KeyEvent("\t"))
	var focused string
	p.eval(`document.activeElement.textContent`, &focused)
	if focused != "Skip to content" {
		t.Errorf("%s: the first Tab focuses %q, want the skip link", page, focused)
	}
}
