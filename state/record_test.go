package state

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/trueline/trueline/drift"
	"github.com/trueline/trueline/internal/testenv"
)

// A record says the mode of its run's plan; the schema takes the two modes
// and a record without one (written before modes, or failed before
// planning), and refuses any other.
func TestRecordMode(t *testing.T) {
	c := jsonschema.NewCompiler()
	sch, err := c.Compile(filepath.Join(testenv.Root(t), "docs", "schema", "run-record.v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode  drift.Mode
		json  string
		valid bool
	}{
		{drift.RefreshOnly, `"mode":"refresh-only"`, true},
		{drift.Full, `"mode":"full"`, true},
		{"", "", true},
		{"refresh_only", `"mode":"refresh_only"`, false},
	} {
		rec := record(7, time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC))
		rec.Mode = tc.mode
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if tc.json != "" && !strings.Contains(string(raw), tc.json) || tc.json == "" && strings.Contains(string(raw), `"mode"`) {
			t.Errorf("mode %q: record %s", tc.mode, raw)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); (err == nil) != tc.valid {
			t.Errorf("mode %q: schema says %v, want valid = %v", tc.mode, err, tc.valid)
		}
	}
}
