package sandbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBucketTake(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cases := []struct {
		name  string
		start bucket
		limit Limit
		calls []int // milliseconds after t0 of each request
		want  string
	}{
		{"a new account serves its burst, then throttles",
			bucket{}, Limit{PerSecond: 2, Burst: 3}, []int{0, 0, 0, 0, 0}, "+++--"},
		{"the rate refills one token per 1/rate",
			bucket{}, Limit{PerSecond: 2, Burst: 1}, []int{0, 100, 499, 501, 600, 1010, 1011}, "+--+-+-"},
		{"the bucket never holds more than the burst",
			bucket{}, Limit{PerSecond: 10, Burst: 2}, []int{0, 0, 10_000, 10_000, 10_000}, "++++-"},
		{"fractions of a token add up",
			bucket{}, Limit{PerSecond: 0.5, Burst: 1}, []int{0, 1000, 1999, 2010}, "+--+"},
		{"a hand-edited negative count holds no tokens",
			bucket{Tokens: -50, Updated: at(0).UnixNano()}, Limit{PerSecond: 1, Burst: 5}, []int{0, 999, 1010}, "--+"},
		{"a hand-edited huge count is capped at the burst",
			bucket{Tokens: 1e9, Updated: at(0).UnixNano()}, Limit{PerSecond: 1, Burst: 2}, []int{0, 0, 0}, "++-"},
		{"NaN holds no tokens",
			bucket{Tokens: math.NaN(), Updated: at(0).UnixNano()}, Limit{PerSecond: 1, Burst: 2}, []int{0, 1010}, "-+"},
		{"a clock that went back refills nothing, and nothing twice",
			bucket{Tokens: 0, Updated: at(5000).UnixNano()}, Limit{PerSecond: 1, Burst: 5}, []int{0, 4000, 5500, 6010}, "---+"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.start
			var got strings.Builder
			for _, ms := range tc.calls {
				if b.take(at(ms), tc.limit) {
					got.WriteByte('+')
				} else {
					got.WriteByte('-')
				}
			}
			if got.String() != tc.want {
				t.Errorf("served %s, want %s (+ served, - throttled)", got.String(), tc.want)
			}
		})
	}
}

func TestAdmitCountsAndStats(t *testing.T) {
	s := Store{Root: t.TempDir()}
	if st, err := s.Stats("ops"); err != nil || st.Requests != 0 || st.Calls != nil {
		t.Fatalf("stats of an account never called = %+v, %v", st, err)
	}
	limit := Limit{PerSecond: 0.001, Burst: 2}
	var served []bool
	for i, op := range []string{OpRead, OpCreate, OpRead, OpDelete} {
		ok, err := s.admit("ops", limit, op, i == 3)
		if err != nil {
			t.Fatal(err)
		}
		served = append(served, ok)
	}
	if fmt.Sprint(served) != "[true true false false]" {
		t.Errorf("served = %v, want the burst of 2 then throttles", served)
	}
	// No limit: served, and counted.
	if ok, err := s.admit("ops", Limit{}, OpUpdate, false); !ok || err != nil {
		t.Errorf("a call without a limit: %v, %v", ok, err)
	}
	st, err := s.Stats("ops")
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Requests: 5, Throttled: 2, Retries: 1, Calls: map[string]int64{OpRead: 1, OpCreate: 1, OpUpdate: 1}}
	if fmt.Sprint(st) != fmt.Sprint(want) {
		t.Errorf("stats = %+v, want %+v", st, want)
	}
	if other, _ := s.Stats("other"); other.Requests != 0 {
		t.Errorf("another account shares the counters: %+v", other)
	}
	if err := s.ResetStats("ops"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats("ops"); err != nil || st.Requests != 0 || st.Calls != nil {
		t.Errorf("stats after reset = %+v, %v", st, err)
	}
	// The bucket survives a reset: the account is still out of tokens.
	if ok, _ := s.admit("ops", limit, OpRead, false); ok {
		t.Error("ResetStats refilled the bucket")
	}
}

func TestAccountNamesAndHostileFiles(t *testing.T) {
	s := Store{Root: t.TempDir()}
	for _, name := range []string{"", "..", "../x", "a/b", `a\b`, ".hidden", "-flag", strings.Repeat("a", 65), "a b"} {
		if _, err := s.admit(name, Limit{}, OpRead, false); err == nil {
			t.Errorf("account %q was accepted", name)
		}
		if _, err := s.Stats(name); err == nil {
			t.Errorf("Stats(%q) was accepted", name)
		}
	}
	if entries, _ := os.ReadDir(s.Root); len(entries) != 0 {
		t.Errorf("a rejected account left files: %v", entries)
	}
	for _, name := range []string{"default", "prod-eu.1", "A_b", strings.Repeat("a", 64)} {
		if _, err := s.admit(name, Limit{}, OpRead, false); err != nil {
			t.Errorf("account %q: %v", name, err)
		}
	}

	dir := s.accountDir("bad")
	os.MkdirAll(dir, 0o755)
	cases := []struct {
		name, file, content, want string
	}{
		{"broken counters", "counters.json", "{", "delete it to reset"},
		{"counters of the wrong shape", "counters.json", `{"requests": "many"}`, "delete it to reset"},
		{"a huge counters file", "counters.json", `{"calls": {"` + strings.Repeat("x", maxAccountFile) + `": 1}}`, "larger than"},
		{"broken bucket", "bucket.json", "[]", "delete it to reset"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.file)
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(p)
			_, err := s.admit("bad", Limit{PerSecond: 1, Burst: 1}, OpRead, false)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("admit with %s: %v; want an error naming %s and %q", tc.file, err, p, tc.want)
			}
			if tc.file == "counters.json" {
				if _, err := s.Stats("bad"); err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("Stats: %v, want an error naming %s", err, p)
				}
			}
		})
	}
}

// hammer requests from one account as fast as it can for d, a millisecond
// apart, and returns how many requests it made and how many were served.
func hammer(s Store, account string, l Limit, d time.Duration) (made, served int, err error) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		ok, err := s.admit(account, l, OpRead, false)
		if err != nil {
			return made, served, err
		}
		made++
		if ok {
			served++
		}
		time.Sleep(time.Millisecond)
	}
	return made, served, nil
}

// checkShared checks what callers that hammered one account for d together
// were served against the limit: never more than the burst and the rate over
// the whole window, and not much less (the callers kept asking), and the
// counters lost no request.
func checkShared(t *testing.T, s Store, l Limit, d, window time.Duration, made, served int) {
	t.Helper()
	upper := float64(l.Burst) + l.PerSecond*window.Seconds() + 1
	lower := float64(l.Burst) + l.PerSecond*d.Seconds()*0.7
	if float64(served) > upper || float64(served) < lower {
		t.Errorf("served %d of %d requests in %v; want %.0f to %.0f for %s", served, made, window, lower, upper, l)
	}
	st, err := s.Stats("shared")
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests != int64(made) || st.Throttled != int64(made-served) || st.Calls[OpRead] != int64(served) {
		t.Errorf("counters %+v; the callers made %d requests and were served %d", st, made, served)
	}
}

func TestBucketSharedByGoroutines(t *testing.T) {
	s := Store{Root: t.TempDir()}
	l := Limit{PerSecond: 20, Burst: 10}
	const d = 1500 * time.Millisecond
	var (
		mu           sync.Mutex
		made, served int
		wg           sync.WaitGroup
	)
	start := time.Now()
	for range 6 {
		wg.Go(func() {
			m, sv, err := hammer(s, "shared", l, d)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			made, served = made+m, served+sv
			mu.Unlock()
		})
	}
	wg.Wait()
	checkShared(t, s, l, d, time.Since(start), made, served)
}

// hammerEnv makes the test binary a hammering process (see TestMain):
// root, account, rate, burst and duration, separated by commas.
const hammerEnv = "SANDBOX_TEST_HAMMER"

func runHammer(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 5 {
		return fmt.Errorf("%s=%q: want root,account,rate,burst,duration", hammerEnv, spec)
	}
	rate, err1 := strconv.ParseFloat(f[2], 64)
	burst, err2 := strconv.Atoi(f[3])
	d, err3 := time.ParseDuration(f[4])
	if err1 != nil || err2 != nil || err3 != nil {
		return fmt.Errorf("%s=%q: want root,account,rate,burst,duration", hammerEnv, spec)
	}
	made, served, err := hammer(Store{Root: f[0]}, f[1], Limit{PerSecond: rate, Burst: burst}, d)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]int{"made": made, "served": served})
}

func TestBucketSharedByProcesses(t *testing.T) {
	s := Store{Root: t.TempDir()}
	l := Limit{PerSecond: 20, Burst: 10}
	const d = 1500 * time.Millisecond
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type proc struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	var procs []*proc
	start := time.Now()
	for range 4 {
		p := &proc{cmd: exec.Command(exe)}
		p.cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,shared,%g,%d,%s", hammerEnv, s.Root, l.PerSecond, l.Burst, d))
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	var made, served int
	for _, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("hammering process: %v\n%s", err, p.out.String())
		}
		var got map[string]int
		if err := json.Unmarshal(p.out.Bytes(), &got); err != nil || got["made"] == 0 {
			t.Fatalf("hammering process said %q (%v)", p.out.String(), err)
		}
		made, served = made+got["made"], served+got["served"]
	}
	checkShared(t, s, l, d, time.Since(start), made, served)
}
