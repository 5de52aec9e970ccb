package notify

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/trueline/trueline/drift"
)

// Where a message shows the verdict, a refresh-only run's says the code
// was not compared; a full run's, and one from before modes, do not.
func TestVerdictLineSaysTheMode(t *testing.T) {
	s := &Slack{Name: "infra"}
	for _, tc := range []struct {
		kind    Kind
		verdict string
		mode    drift.Mode
		want    string
	}{
		{DriftFound, "drifted", drift.RefreshOnly, `*Verdict*\ndrifted (refresh-only: the code was not compared)`},
		{Cleared, "in_sync", drift.RefreshOnly, `*Verdict*\nin_sync (refresh-only: the code was not compared)`},
		{DriftFound, "drifted", drift.Full, `*Verdict*\ndrifted"`},
		{DriftFound, "drifted", "", `*Verdict*\ndrifted"`},
	} {
		e := event(tc.kind)
		e.Verdict, e.Result.Mode = tc.verdict, tc.mode
		_, blocks := s.message(e)
		b, err := json.Marshal(blocks)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%s %s %q: blocks lack %s:\n%s", tc.kind, tc.verdict, tc.mode, tc.want, b)
		}
	}
}
