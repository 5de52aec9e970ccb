package sandbox

import (
	"fmt"
	"os"
	"testing"
)

// TestMain lets TestBucketSharedByProcesses run this binary as several
// processes hammering one account.
func TestMain(m *testing.M) {
	if spec := os.Getenv(hammerEnv); spec != "" {
		if err := runHammer(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
