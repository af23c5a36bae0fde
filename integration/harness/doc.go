// Package harness starts the real servers the integration tests talk to and
// gives the tests clients for them:
//
//   - StartProsody runs a private Prosody per test, from a generated config on
//     free loopback ports, whose component section is the operators' snippet
//     configs/servers/prosody-component.cfg.lua;
//   - DialClient is a real XMPP client (mellium, c2s without TLS) that
//     collects what it receives;
//   - the AMQP helpers publish to and read from uniquely named queues of the
//     RabbitMQ at AMQPURL();
//   - BuildBinary builds ./cmd/xmppgw once per test binary, for tests that
//     run (and kill) the gateway as a process.
//
// Everything registers its own cleanup with t.Cleanup. Nothing here skips a
// test: a missing server is a failure that names the fix (run .ci/setup).
package harness
