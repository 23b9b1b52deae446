package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the browser to drive: -chromium, or Debian's
// chromium on PATH.
func findChromium(explicit string) (string, error) {
	for _, name := range []string{explicit, "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no headless browser: install the Debian package chromium (`make deps`), or pass -chromium")
}

// browser is one headless Chromium; its tabs share one cookie jar, so one
// sign-in serves them all.
type browser struct {
	ctx    context.Context
	cancel func()
}

func newBrowser(path string) (*browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1280, 900),
		// The gateway serves a certificate of its own CA.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	b := &browser{ctx: ctx, cancel: func() { cancelBrowser(); cancelAlloc() }}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		b.cancel()
		return nil, fmt.Errorf("start chromium: %w", err)
	}
	return b, nil
}

// tab opens a tab; close it with the returned func.
func (b *browser) tab() (context.Context, func(), error) {
	ctx, cancel := chromedp.NewContext(b.ctx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, cancel, nil
}

// signIn follows the gateway's one-time sign-in link: the session cookie
// then opens every tab's dashboard.
func (b *browser) signIn(link string) error {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`form.who`)))
}

// pageTiming is one load of a page, from the browser's Navigation and
// Paint Timing: first contentful paint, and fully loaded (the later of
// the load event's end and that paint), both from the start of the
// navigation.
type pageTiming struct {
	FirstMs  float64 `json:"first"`
	LoadedMs float64 `json:"loaded"`
	Rows     int     `json:"rows"`
}

const timingJS = `(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  return {first: fcp ? fcp.startTime : -1, loaded: nav.loadEventEnd, rows: document.querySelectorAll("tr[data-site]").length};
})()`

// measure loads url in a fresh tab runs+1 times (the first warms the
// browser's cache of the static assets, as an operator's second visit)
// and returns the median first paint and load.
func (b *browser) measure(url string, runs int) (pageTiming, error) {
	ctx, closeTab, err := b.tab()
	if err != nil {
		return pageTiming{}, err
	}
	defer closeTab()
	var firsts, loads []float64
	var last pageTiming
	for i := range runs + 1 {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := chromedp.Do(tctx, chromedp.Navigate(url))
		if err == nil {
			// loadEventEnd is set just after the load event's handlers;
			// the paint entry may come after it.
			pctx, cancel := context.WithTimeout(tctx, 10*time.Second)
			last, err = chromedp.Run(pctx, chromedp.Poll[pageTiming](`((t) => t.loaded > 0 && t.first >= 0 && t)(`+timingJS+`)`, chromedp.WithPollingInterval(10*time.Millisecond)))
			cancel()
		}
		cancel()
		if err != nil {
			return pageTiming{}, fmt.Errorf("load %s: %w", url, err)
		}
		// Fully loaded: the load event has ended and the page has painted.
		last.LoadedMs = max(last.LoadedMs, last.FirstMs)
		if i > 0 {
			firsts, loads = append(firsts, last.FirstMs), append(loads, last.LoadedMs)
		}
	}
	return pageTiming{FirstMs: median(firsts), LoadedMs: median(loads), Rows: last.Rows}, nil
}

// openDashboards opens n tabs on url, each with its live stream
// connected; close them with the returned func.
func (b *browser) openDashboards(url string, n int) (func(), error) {
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for range n {
		ctx, closeTab, err := b.tab()
		if err != nil {
			closeAll()
			return nil, err
		}
		closers = append(closers, closeTab)
		tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err = chromedp.Do(tctx, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS(`html[data-live-connected]`)))
		cancel()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("open dashboard %s: %w", url, err)
		}
	}
	return closeAll, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
