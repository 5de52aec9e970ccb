package limiter

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// What a run's terraform output says about the cloud's API: how many
// requests it made, and how often it was throttled.

// throttle matches what the clouds' SDKs and providers say when a request
// is over the rate limit: AWS (ThrottlingException, "Rate exceeded",
// RequestLimitExceeded), Google (rateLimitExceeded), HTTP 429 (Azure and
// most REST APIs: TooManyRequests, "429 Too Many Requests", a status code
// 429). A bare 429 is not enough: ids and sizes hold such digits.
var throttle = regexp.MustCompile(`(?i)ThrottlingException|Rate exceeded|RequestLimitExceeded|rateLimitExceeded|TooManyRequests|Too Many Requests|\b(?:status(?:\s*code)?|statuscode|http(?:/[0-9.]+)?|code|response|error)(?::\s?|=|\s)429\b`)

// progress matches terraform's lines for one API-backed step of a
// resource: "aws_instance.web: Refreshing state... [id=i-1]", "data.x.y:
// Reading...", and an apply's "Creating...", "Modifying...",
// "Destroying...". "Still creating..." repeats a step and is left out.
var progress = regexp.MustCompile(`^\S.*?: (?:Refreshing state|Reading|Creating|Modifying|Destroying)\.\.\.(?:\s|$)`)

// diagnostic starts one of terraform's error or warning blocks.
var diagnostic = regexp.MustCompile(`^(?:Error|Warning): `)

// lines yields the output's lines without the box terraform draws around
// diagnostics when it writes in color.
func lines(output string) []string {
	ls := strings.Split(output, "\n")
	for i, l := range ls {
		l = strings.TrimRight(l, "\r")
		for _, box := range []string{"│ ", "│", "╷", "╵"} {
			if rest, ok := strings.CutPrefix(l, box); ok {
				l = rest
				break
			}
		}
		ls[i] = l
	}
	return ls
}

// Throttles counts the throttling a run's terraform output shows: each
// error or warning block that says a request was throttled counts once
// (terraform wraps a diagnostic's text, so its lines are read as one), and
// so does each other line that says so (a provider's log of a retry). A
// provider that retried a throttled request and then succeeded says
// nothing in the output; only the throttling it gave up on shows.
func Throttles(output string) int {
	n := 0
	var block []string
	flush := func() {
		if len(block) > 0 && throttle.MatchString(strings.Join(strings.Fields(strings.Join(block, " ")), " ")) {
			n++
		}
		block = nil
	}
	for _, l := range lines(output) {
		switch {
		case diagnostic.MatchString(l):
			flush()
			block = []string{l}
		case progress.MatchString(l) || strings.HasPrefix(l, "trueline: "):
			// The block is over: terraform (or trueline) goes on.
			flush()
			if throttle.MatchString(l) {
				n++
			}
		case block != nil:
			block = append(block, l)
		case throttle.MatchString(l):
			n++
		}
	}
	flush()
	return n
}

// Requests counts the API requests a run's terraform output shows: one
// for each resource refreshed, each data source read and each resource
// created, updated or deleted. Retries and a provider's extra calls do not
// show, so it is a lower bound, and what the next run of the same
// workspace is expected to make.
func Requests(output string) int {
	n := 0
	for _, l := range lines(output) {
		if progress.MatchString(l) {
			n++
		}
	}
	return n
}

// maxStateFile bounds what is read of a local state file for an estimate;
// a larger one is counted as unknown.
const maxStateFile = 64 << 20

// LocalState counts the resource instances (data sources included) of a
// workspace's local state file in a stack's directory (terraform.tfstate,
// or terraform.tfstate.d/<workspace>/terraform.tfstate): a plan refreshes
// each once. ok is false when there is none, or it cannot be read whole.
func LocalState(dir, workspace string) (n int, ok bool) {
	p := filepath.Join(dir, "terraform.tfstate")
	if workspace != "" && workspace != "default" {
		if strings.ContainsAny(workspace, `/\`) || workspace == ".." {
			return 0, false
		}
		p = filepath.Join(dir, "terraform.tfstate.d", workspace, "terraform.tfstate")
	}
	f, err := os.Open(p)
	if err != nil {
		return 0, false
	}
	defer func() { _ = f.Close() }() // read only
	n, err = countInstances(io.LimitReader(f, maxStateFile))
	return n, err == nil
}

// countInstances counts the instances of a state document without keeping
// their attributes.
func countInstances(r io.Reader) (int, error) {
	var st struct {
		Version   int `json:"version"`
		Resources []struct {
			Instances []struct{} `json:"instances"`
		} `json:"resources"`
	}
	if err := json.NewDecoder(r).Decode(&st); err != nil {
		return 0, err
	}
	if st.Version < 4 {
		return 0, errors.New("not a state file of terraform 0.12 or later")
	}
	n := 0
	for _, res := range st.Resources {
		n += len(res.Instances)
	}
	return n, nil
}
