package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A RabbitMQ cluster on loopback: private nodes (StartRabbitMQDir), each
// with its own node name, AMQP and distribution ports, and data dir, one
// Erlang cookie shared through each node's HOME; the nodes after the first
// join the first (stop_app, join_cluster, start_app).

// clusterFormTimeout bounds the joining of the nodes and the wait until
// every node sees all of them running: slow on a busy 2-core machine.
const clusterFormTimeout = 180 * time.Second

// RabbitCluster is a cluster of private RabbitMQ nodes started by one test.
type RabbitCluster struct {
	Nodes []*RabbitMQ
	Dir   string
	// FormTime is how long it took from the start of the first node until
	// every node saw all of them running.
	FormTime time.Duration
}

// StartRabbitCluster starts n private nodes in parallel, joins them into
// one cluster, waits until every node sees all of them running, and stops
// them all when the test ends (logging the output and logs of each if the
// test failed), also when the start fails half-way.
func StartRabbitCluster(t testing.TB, n int, opts RabbitMQOptions) *RabbitCluster {
	t.Helper()
	began := time.Now()
	dir, err := os.MkdirTemp("", "xmppgw-rabbit-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &RabbitCluster{Dir: dir, Nodes: make([]*RabbitMQ, n)}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("harness: %v", err)
		}
		if t.Failed() {
			for _, r := range c.Nodes {
				if r == nil {
					continue
				}
				t.Logf("rabbitmq %s output:\n%s", r.Node, tail(r.Output(), 4<<10))
				if b, err := os.ReadFile(r.LogFile()); err == nil {
					t.Logf("rabbitmq %s log:\n%s", r.Node, tail(string(b), 8<<10))
				}
			}
		}
		os.RemoveAll(dir)
	})
	if opts.Cookie == "" {
		opts.Cookie = strings.ToUpper(randomHex(16))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
			if errs[i] = os.MkdirAll(d, 0o700); errs[i] != nil {
				return
			}
			c.Nodes[i], errs[i] = StartRabbitMQDir(d, opts)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("harness: starting %d rabbitmq nodes: %v", n, err)
	}
	if err := c.join(); err != nil {
		t.Fatal(err)
	}
	c.FormTime = time.Since(began)
	for _, r := range c.Nodes {
		t.Logf("harness: rabbitmq node %s (AMQP 127.0.0.1:%d) started in %s", r.Node, r.Port, r.StartTime.Round(time.Millisecond))
	}
	return c
}

// join makes every node after the first join the first's cluster, one at
// a time, and waits until every node sees all of them running.
func (c *RabbitCluster) join() error {
	first := c.Nodes[0]
	for _, r := range c.Nodes[1:] {
		// start_app returns once the application runs; the wait below
		// checks that every node sees it.
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", first.Node}, {"start_app"}} {
			if _, err := r.Ctl(args...); err != nil {
				return fmt.Errorf("harness: %s joining %s: %w", r.Node, first.Node, err)
			}
		}
	}
	want := c.NodeNames()
	deadline := time.Now().Add(clusterFormTimeout)
	for _, r := range c.Nodes {
		for {
			running, err := r.RunningNodes()
			if err == nil && slices.Equal(running, want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("harness: cluster not formed within %s: %s sees %v running (%v), want %v", clusterFormTimeout, r.Node, running, err, want)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

// NodeNames lists the names of the nodes, sorted.
func (c *RabbitCluster) NodeNames() []string {
	var names []string
	for _, r := range c.Nodes {
		names = append(names, r.Node)
	}
	slices.Sort(names)
	return names
}

// URLs is the AMQP URLs of the nodes separated by commas, in node order:
// an amqp.url for the gateway.
func (c *RabbitCluster) URLs() string {
	var urls []string
	for _, r := range c.Nodes {
		urls = append(urls, r.URL)
	}
	return strings.Join(urls, ",")
}

// Node returns the node named name, nil if none.
func (c *RabbitCluster) Node(name string) *RabbitMQ {
	for _, r := range c.Nodes {
		if r.Node == name {
			return r
		}
	}
	return nil
}

// RunningNodes lists, sorted, the nodes of its cluster that r sees
// running (rabbitmqctl cluster_status).
func (r *RabbitMQ) RunningNodes() ([]string, error) {
	out, err := r.Ctl("cluster_status", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Running []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &st); err != nil {
		return nil, fmt.Errorf("harness: cluster_status of %s: %w: %s", r.Node, err, tail(out, 1<<10))
	}
	slices.Sort(st.Running)
	return st.Running, nil
}

// QueueLeader returns the node that leads the quorum queue q, as r sees it
// (rabbitmqctl list_queues name leader).
func (r *RabbitMQ) QueueLeader(q string) (string, error) {
	out, err := r.Ctl("list_queues", "name", "leader", "--formatter", "json")
	if err != nil {
		return "", err
	}
	var qs []struct {
		Name   string `json:"name"`
		Leader string `json:"leader"`
	}
	if err := json.Unmarshal([]byte(jsonPart(out)), &qs); err != nil {
		return "", fmt.Errorf("harness: list_queues on %s: %w: %s", r.Node, err, tail(out, 1<<10))
	}
	for _, x := range qs {
		if x.Name == q {
			if x.Leader == "" {
				return "", fmt.Errorf("harness: queue %s has no leader (yet)", q)
			}
			return x.Leader, nil
		}
	}
	return "", fmt.Errorf("harness: queue %s not found on %s", q, r.Node)
}

// Kill ends the node with SIGKILL, as a crash would: its client
// connections and its cluster links drop at once. Close does nothing
// afterwards.
func (r *RabbitMQ) Kill() { r.kill() }

// NodeConnections lists the pids of the client connections to the node r
// itself (list_connections shows those of the whole cluster) whose client
// properties contain marker.
func (r *RabbitMQ) NodeConnections(marker string) ([]string, error) {
	pids, err := r.Connections(marker)
	if err != nil {
		return nil, err
	}
	var own []string
	for _, pid := range pids {
		// A pid is <node.N.M.K>, the node's name first.
		if strings.HasPrefix(pid, "<"+r.Node+".") {
			own = append(own, pid)
		}
	}
	return own, nil
}

// jsonPart is out from its first '{' or '[' on: rabbitmqctl may print a
// banner line first.
func jsonPart(out string) string {
	if i := strings.IndexAny(out, "{["); i >= 0 {
		return out[i:]
	}
	return out
}

// Close stops every node, all at once, and waits until they exited. It
// may be called more than once.
func (c *RabbitCluster) Close() error {
	errs := make([]error, len(c.Nodes))
	var wg sync.WaitGroup
	for i, r := range c.Nodes {
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
