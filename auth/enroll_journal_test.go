package auth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The store survives a restart through its journal, a crash mid-line
// loses only the unacknowledged change, and the snapshot is rewritten only
// when the journal outgrows it.
func TestEnrolmentsJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "enrolments.json")
	e, err := OpenEnrolments(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.NewJoinToken(bg, "site-1", map[string]string{"plant": "a"}, time.Hour, "admin", strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	spare, _, err := e.NewJoinToken(bg, "site-2", nil, time.Hour, "admin", strings.Repeat("0", 64))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Redeem(bg, tok); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"0a", "0b"} {
		if err := e.Issued(bg, "site-1", s, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Issued(bg, "site-3", "0c", ""); err != nil {
		t.Fatal(err)
	}
	if n, err := e.Revoke(bg, "site-3"); n != 1 || err != nil {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a snapshot after 7 changes: %v (the journal should hold them)", err)
	}
	e.Close()
	// A crash while appending: half a line at the end.
	f, err := os.OpenFile(path+".log", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"issued":["site-1","0d`)
	f.Close()

	e, err = OpenEnrolments(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Redeem(bg, tok); err == nil {
		t.Error("a spent join token was accepted again after a restart")
	}
	if labels, err := e.Redeem(bg, spare); err != nil || labels != nil {
		t.Errorf("the unspent token after a restart: %v %v", labels, err)
	}
	if !e.IsRevoked("0c") || e.IsRevoked("0a") || e.IsRevoked("0d") {
		t.Errorf("revocations after a restart: 0c %v, 0a %v, 0d %v", e.IsRevoked("0c"), e.IsRevoked("0a"), e.IsRevoked("0d"))
	}
	if got, _ := e.Sites(bg); len(got) != 1 || got[0] != "site-1" || len(e.st.Serials["site-1"]) != 2 {
		t.Errorf("sites %v, serials %v: the torn line must not count", got, e.st.Serials)
	}
	// The torn line is gone, so the next change is a whole line.
	if err := e.Issued(bg, "site-1", "0e", ""); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e, err = OpenEnrolments(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := e.st.Serials["site-1"]; len(s) != 3 || s[2] != "0e" {
		t.Fatalf("serials %v after the repaired journal", s)
	}
	// Past compactAt changes the snapshot is rewritten and the journal
	// emptied; a replay of a journal already in the snapshot is harmless.
	for i := range compactAt {
		if err := e.Issued(bg, "site-4", "ff"+string(rune('a'+i%26)), ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no snapshot after %d changes: %v", compactAt, err)
	}
	if fi, err := os.Stat(path + ".log"); err != nil || fi.Size() > 1000 {
		t.Fatalf("journal after compaction: %v %v", fi.Size(), err)
	}
	journal, _ := os.ReadFile(path + ".log")
	e.Close()
	os.WriteFile(path+".log", append(journal, []byte(`{"issued":["site-1","0e"]}`+"\n")...), 0o600)
	e, err = OpenEnrolments(path)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if s := e.st.Serials["site-1"]; len(s) != 3 {
		t.Errorf("replaying a change already in the snapshot: serials %v", s)
	}
	// A bad line before the end is corruption, not a torn write.
	e.Close()
	os.WriteFile(path+".log", []byte("{nope\n"+`{"redeem":"x"}`+"\n"), 0o600)
	if _, err := OpenEnrolments(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a corrupt journal: %v", err)
	}
}

var bg = context.Background()
