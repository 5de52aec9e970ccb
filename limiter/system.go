package limiter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// System reads the machine's load for the adaptive limit.
type System interface {
	Read() (Reading, error)
}

// Reading is the machine at one moment: cumulative CPU time (in any unit)
// and memory in bytes.
type Reading struct {
	CPUBusy, CPUTotal      uint64
	MemTotal, MemAvailable uint64
}

// between is the sample of the interval from r to next: the busy share of
// the CPU time that passed, and the available share of memory now;
// negative for what the readings do not tell.
func (r Reading) between(next Reading) (cpu, mem float64) {
	cpu, mem = -1, -1
	if next.CPUTotal > r.CPUTotal && next.CPUBusy >= r.CPUBusy {
		cpu = min(1, float64(next.CPUBusy-r.CPUBusy)/float64(next.CPUTotal-r.CPUTotal))
	}
	if next.MemTotal > 0 {
		mem = min(1, float64(next.MemAvailable)/float64(next.MemTotal))
	}
	return cpu, mem
}

// Proc reads Linux's /proc/stat and /proc/meminfo, and the memory limit of
// the process's cgroup (v2) when it has one: in a container, the
// machine's free memory is not the container's.
type Proc struct {
	// Root is where proc and sys are; empty means "/".
	Root string
}

// procFileLimit bounds what is read of one file: /proc/stat grows with the
// CPU count, and a few hundred kilobytes cover thousands of CPUs.
const procFileLimit = 1 << 20

func (p Proc) read(path string) ([]byte, error) {
	root := p.Root
	if root == "" {
		root = "/"
	}
	f, err := os.Open(filepath.Join(root, path))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read only
	b, err := io.ReadAll(io.LimitReader(f, procFileLimit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, nil
}

// Read returns the CPU time of all CPUs and the memory now.
func (p Proc) Read() (Reading, error) {
	var r Reading
	stat, err := p.read("proc/stat")
	if err != nil {
		return r, err
	}
	if r.CPUBusy, r.CPUTotal, err = parseStat(stat); err != nil {
		return r, err
	}
	info, err := p.read("proc/meminfo")
	if err != nil {
		return r, err
	}
	if r.MemTotal, r.MemAvailable, err = parseMeminfo(info); err != nil {
		return r, err
	}
	if limit, used, ok := p.cgroupMemory(); ok && limit < r.MemTotal {
		r.MemTotal = limit
		r.MemAvailable = min(r.MemAvailable, limit-min(limit, used))
	}
	return r, nil
}

// parseStat reads the first line of /proc/stat, the sum over all CPUs:
// "cpu user nice system idle iowait irq softirq steal ...". Idle and iowait
// are the idle time; guest time is already inside user.
func parseStat(b []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	var idle uint64
	for i, s := range f[1:min(len(f), 9)] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %w", s, err)
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return total - idle, total, nil
}

// parseMeminfo reads MemTotal and MemAvailable (kB) from /proc/meminfo.
func parseMeminfo(b []byte) (total, avail uint64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var seen int
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "MemTotal" && name != "MemAvailable") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, 0, fmt.Errorf("/proc/meminfo: %s has no value", name)
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || v > 1<<50 {
			return 0, 0, fmt.Errorf("/proc/meminfo: %s = %q", name, f[0])
		}
		if name == "MemTotal" {
			total = v << 10
		} else {
			avail = v << 10
		}
		seen++
	}
	if seen < 2 || total == 0 {
		return 0, 0, errors.New("/proc/meminfo: no MemTotal and MemAvailable")
	}
	return total, avail, nil
}

// cgroupMemory is the cgroup v2 memory limit of this process and what it
// uses, page cache it could drop (inactive_file) left out; ok is false
// without a cgroup v2 limit.
func (p Proc) cgroupMemory() (limit, used uint64, ok bool) {
	b, err := p.read("proc/self/cgroup")
	if err != nil {
		return 0, 0, false
	}
	// cgroup v2 is the line "0::/path".
	var dir string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, found := strings.CutPrefix(line, "0::"); found {
			dir = rest
		}
	}
	if dir == "" || strings.Contains(dir, "..") {
		return 0, 0, false
	}
	num := func(name string) (uint64, bool) {
		b, err := p.read(filepath.Join("sys/fs/cgroup", dir, name))
		if err != nil {
			return 0, false
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v, err == nil // "max" is no limit
	}
	limit, ok = num("memory.max")
	if !ok {
		return 0, 0, false
	}
	used, ok = num("memory.current")
	if !ok {
		return 0, 0, false
	}
	if st, err := p.read(filepath.Join("sys/fs/cgroup", dir, "memory.stat")); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, found := strings.CutPrefix(line, "inactive_file "); found {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
					used -= min(used, n)
				}
			}
		}
	}
	return limit, used, true
}
