package limiter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcRead(t *testing.T) {
	tests := []struct {
		root string
		want Reading
	}{
		// busy = all but idle (3699) and iowait (23) of 9390.
		{"host", Reading{CPUBusy: 5668, CPUTotal: 9390, MemTotal: 24684544 << 10, MemAvailable: 23953408 << 10}},
		// A 2 GiB cgroup using 1.5 GiB, a quarter GiB of it droppable cache.
		{"container", Reading{CPUBusy: 5668, CPUTotal: 9390, MemTotal: 2 << 30, MemAvailable: 3 << 28}},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			got, err := Proc{Root: filepath.Join("testdata", "proc", tt.root)}.Read()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Read() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProcReadBroken(t *testing.T) {
	stat := "cpu  4705 356 584 3699 23 23 0 0 0 0\n"
	meminfo := "MemTotal: 1000 kB\nMemAvailable: 500 kB\n"
	tests := []struct {
		name          string
		stat, meminfo string
		wantErr       string
	}{
		{"no cpu line", "intr 1 2 3\n", meminfo, "no cpu line"},
		{"a negative count", "cpu  -4705 356 584 3699 23\n", meminfo, "/proc/stat"},
		{"short cpu line", "cpu 1 2\n", meminfo, "no cpu line"},
		{"no MemAvailable", stat, "MemTotal: 1000 kB\n", "MemAvailable"},
		{"a number too large", stat, "MemTotal: 99999999999999999999 kB\nMemAvailable: 1 kB\n", "MemTotal"},
		{"a huge file stops at the bound", strings.Repeat("x", 2*procFileLimit), meminfo, "no cpu line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, content := range map[string]string{"stat": tt.stat, "meminfo": tt.meminfo} {
				if err := os.WriteFile(filepath.Join(root, "proc", name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Proc{Root: root}.Read()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Read() error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestProcReadsThisMachine reads the real /proc: the tests run on Linux,
// where the limit must have readings to grow.
func TestProcReadsThisMachine(t *testing.T) {
	a, err := Proc{}.Read()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // /proc/stat counts in ticks of 10 ms
	b, err := Proc{}.Read()
	if err != nil {
		t.Fatal(err)
	}
	cpu, mem := a.between(b)
	if cpu < 0 || cpu > 1 || mem <= 0 || mem > 1 {
		t.Errorf("between two readings: CPU %v, memory %v; want shares from 0 to 1", cpu, mem)
	}
}

func TestBetween(t *testing.T) {
	tests := []struct {
		name     string
		a, b     Reading
		cpu, mem float64
	}{
		{"half busy", Reading{CPUBusy: 100, CPUTotal: 200}, Reading{CPUBusy: 150, CPUTotal: 300, MemTotal: 10, MemAvailable: 4}, 0.5, 0.4},
		{"no time passed", Reading{CPUTotal: 200}, Reading{CPUTotal: 200, MemTotal: 10, MemAvailable: 10}, -1, 1},
		{"counters went back", Reading{CPUBusy: 100, CPUTotal: 200}, Reading{CPUBusy: 50, CPUTotal: 300}, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cpu, mem := tt.a.between(tt.b)
			if cpu != tt.cpu || mem != tt.mem {
				t.Errorf("between = %v, %v; want %v, %v", cpu, mem, tt.cpu, tt.mem)
			}
		})
	}
}
