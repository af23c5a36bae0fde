// Package integration holds the end-to-end tests of xmppgw: the gateway
// against a real Prosody and the real RabbitMQ. Their harness is the package
// xmppgw/integration/harness.
//
// # Running
//
// On a fresh Debian 12 machine, once (root; installs Prosody, makes sure
// RabbitMQ is up):
//
//	.ci/setup
//
// then
//
//	go test -race -count=1 ./integration/...
//
// or all of CI with `make test`. The tests fail (never skip) when Prosody is
// missing or RabbitMQ is not reachable, naming .ci/setup as the fix.
//
// # What a test gets
//
//   - its own Prosody (harness.StartProsody): a config generated into
//     t.TempDir() on free loopback ports, VirtualHost "localhost" with
//     plaintext c2s, the component "gw.localhost" configured by the
//     operators' snippet configs/servers/prosody-component.cfg.lua, room for
//     a million offline messages per user and no rate limits. It can be
//     stopped, killed and restarted on the same ports and data;
//   - real clients (harness.DialClient) that collect every message and
//     presence they receive, and can send raw stanzas and IQs;
//   - uniquely named queues (harness.UniqueQueue) on the broker at
//     $XMPPGW_TEST_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/),
//     deleted when the test ends;
//   - the gateway binary (harness.BuildBinary), for tests that run it as a
//     process and kill it.
//
// Figures from this 2-core machine, to size timeouts: a Prosody starts in
// about 0.1 s and registers a user in 0.1 s; it routes about 10,000 messages
// per second to an online client and stores about 2,500 per second for an
// offline one (so 20,000 offline messages take about 8 s to store and 3 s to
// deliver at login). The harness client parses over 100,000 per second.
//
// Nothing is shared between tests but the broker, so tests may run in
// parallel; each Prosody uses about one core while busy, so the heavy ones
// (20,000 items) should not. Logs of a failed test include Prosody's
// output and log file.
//
// # Environment
//
//	XMPPGW_TEST_AMQP_URL   the broker (default the local guest account)
package integration
