package integration

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the gateways the tests run leave no goroutine
// behind. (The harness's own Prosody watchers end with their tests.)
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
