package testredis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/freeport"
)

// ClusterNodeTimeout is the cluster-node-timeout of the nodes StartCluster
// starts: a primary that answers no ping for this long is suspected, and,
// once most primaries agree, failed over to its replica. Redis's default is
// 15 s; a short one keeps failover tests quick (a replica is promoted about
// 2-3 s after its primary dies).
const ClusterNodeTimeout = 1000 * time.Millisecond

// Cluster is a Redis Cluster started for a test: redis-server processes on
// loopback with --cluster-enabled yes, joined by redis-cli --cluster create
// (or by CLUSTER ADDSLOTSRANGE and CLUSTER MEET for fewer than three
// primaries, which redis-cli refuses).
type Cluster struct {
	// Nodes are the cluster's nodes: the primaries first (as created), then
	// the replicas. Roles change with failovers: ask Node.Role.
	Nodes []*ClusterNode

	tls       *tls.Config // StartClusterTLS: how its clients connect
	primaries int         // how many serve slots (a failover swaps roles, not the count)
}

// ClusterNode is one redis-server of a Cluster. Kill (SIGKILL), Restart,
// Pause (SIGSTOP) and Resume (SIGCONT) come from Server; a restarted node
// keeps its node id and its view of the cluster (its nodes.conf) but not
// its data (no persistence), and rejoins, as a replica if it was failed
// over meanwhile.
type ClusterNode struct {
	*Server
	// ID is the node's cluster node id (CLUSTER MYID).
	ID string
	// busPort is the node's cluster bus port (cluster-port).
	busPort int
	// failSlot is a slot the node served when Kill stopped it (-1: none).
	failSlot int
	tls      *tls.Config // StartClusterTLS: how its clients connect
}

// TLSFiles are the PEM files of a TLS setup: a CA, and a certificate signed
// by it (valid for 127.0.0.1) with its key.
type TLSFiles struct {
	CA, Cert, Key string
}

// StartCluster starts a Redis Cluster of primaries primaries (at least one)
// with replicasPerPrimary replicas each, waits until every node reports
// cluster_state:ok with all 16384 slots assigned and every replica has
// finished its first sync, and stops it when tb ends. The nodes run with
// appendonly no, no snapshots, cluster-node-timeout ClusterNodeTimeout and
// cluster-replica-validity-factor 0 (a replica always tries to take over a
// failed primary), cluster-require-full-coverage no (the other primaries
// serve their slots while one is down, as the README advises),
// repl-diskless-sync-delay 0 (a replica's first sync
// starts at once, not after Redis's default 5 s), each with its cluster bus on a free port of its own
// (cluster-port). It needs redis-server and redis-cli on PATH: under CI a
// missing one fails the test, elsewhere it skips. Without TLS or a password:
// tests of those set up their own servers.
func StartCluster(tb testing.TB, primaries, replicasPerPrimary int) *Cluster {
	tb.Helper()
	return startCluster(tb, primaries, replicasPerPrimary, nil)
}

// StartClusterTLS starts a cluster as StartCluster does whose nodes speak
// only TLS, with files' certificate, to clients, to their replicas and on
// the cluster bus (tls-cluster, tls-replication; clients need no
// certificate). URL is then rediss://, and Client, ClusterNode.Client and
// the helpers trust files.CA.
func StartClusterTLS(tb testing.TB, primaries, replicasPerPrimary int, files TLSFiles) *Cluster {
	tb.Helper()
	return startCluster(tb, primaries, replicasPerPrimary, &files)
}

func startCluster(tb testing.TB, primaries, replicasPerPrimary int, files *TLSFiles) *Cluster {
	tb.Helper()
	if primaries < 1 || replicasPerPrimary < 0 {
		tb.Fatalf("testredis: StartCluster(%d, %d): want at least one primary", primaries, replicasPerPrimary)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missing(tb, "no redis-server on PATH (apt-get install redis-server)")
	}
	cliBin, err := exec.LookPath("redis-cli")
	if err != nil {
		missing(tb, "no redis-cli on PATH (apt-get install redis-tools)")
	}
	start := time.Now()
	c := &Cluster{primaries: primaries}
	var cliTLS []string
	if files != nil {
		pem, err := os.ReadFile(files.CA)
		if err != nil {
			tb.Fatalf("testredis: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			tb.Fatalf("testredis: no certificate in %s", files.CA)
		}
		c.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		cliTLS = []string{"--tls", "--cacert", files.CA}
	}
	n := primaries * (1 + replicasPerPrimary)
	for i := 0; i < n; i++ {
		port, err := freeport.Loopback()
		if err != nil {
			tb.Fatalf("testredis: free port: %v", err)
		}
		busPort, err := freeport.Loopback()
		if err != nil {
			tb.Fatalf("testredis: free port: %v", err)
		}
		s := &Server{dir: tb.TempDir(), Addr: fmt.Sprintf("127.0.0.1:%d", port), extra: []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort),
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
			"--cluster-replica-validity-factor", "0",
			"--cluster-require-full-coverage", "no",
			"--repl-diskless-sync-delay", "0",
		}}
		if files != nil {
			s.extra = append(s.extra, "--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", files.Cert, "--tls-key-file", files.Key, "--tls-ca-cert-file", files.CA,
				"--tls-auth-clients", "no", "--tls-cluster", "yes", "--tls-replication", "yes")
		}
		if err := s.startBinary(bin); err != nil {
			tb.Fatalf("testredis: cluster node: %v", err)
		}
		tb.Cleanup(s.stop)
		c.Nodes = append(c.Nodes, &ClusterNode{Server: s, busPort: busPort, failSlot: -1, tls: c.tls})
	}
	ctx := context.Background()
	for _, node := range c.Nodes {
		id, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterMyID(ctx).Result() })
		if err != nil {
			tb.Fatalf("testredis: CLUSTER MYID %s: %v", node.Addr, err)
		}
		node.ID = id
	}
	if primaries >= 3 {
		args := append(cliTLS, "--cluster", "create")
		for _, node := range c.Nodes {
			args = append(args, node.Addr)
		}
		args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerPrimary), "--cluster-yes")
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		out, err := exec.CommandContext(cctx, cliBin, args...).CombinedOutput()
		cancel()
		if err != nil {
			tb.Fatalf("testredis: redis-cli --cluster create: %v\n%s", err, out)
		}
	} else if err := c.joinByHand(ctx, primaries); err != nil {
		tb.Fatalf("testredis: %v", err)
	}
	if err := c.waitReady(ctx, 30*time.Second); err != nil {
		tb.Fatalf("testredis: cluster of %d+%d never ready: %v", primaries, primaries*replicasPerPrimary, err)
	}
	tb.Logf("testredis: cluster of %d primaries and %d replicas ready in %v", primaries, primaries*replicasPerPrimary,
		time.Since(start).Round(time.Millisecond))
	return c
}

// joinByHand builds the cluster without redis-cli (which wants three
// primaries): the first primaries nodes split the slots evenly, every node
// meets the first, and the others replicate the primaries in turn.
func (c *Cluster) joinByHand(ctx context.Context, primaries int) error {
	first := c.Nodes[0]
	host, port, _ := strings.Cut(first.Addr, ":")
	for i, node := range c.Nodes {
		if i < primaries {
			lo, hi := i*16384/primaries, (i+1)*16384/primaries-1
			if _, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) {
				return r.ClusterAddSlotsRange(ctx, lo, hi).Result()
			}); err != nil {
				return fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", node.Addr, err)
			}
		}
		if i > 0 {
			// CLUSTER MEET ip port cluster-port: the bus is not on port+10000.
			if _, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) {
				return r.Do(ctx, "CLUSTER", "MEET", host, port, first.busPort).Text()
			}); err != nil {
				return fmt.Errorf("CLUSTER MEET on %s: %w", node.Addr, err)
			}
		}
	}
	for i, node := range c.Nodes[primaries:] {
		primary := c.Nodes[i%primaries]
		// A replica can only follow a primary it already knows.
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if _, err = do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) {
				return r.ClusterReplicate(ctx, primary.ID).Result()
			}); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("CLUSTER REPLICATE on %s: %w", node.Addr, err)
		}
	}
	return nil
}

// waitReady waits until every live node (not killed, not paused) reports
// cluster_state:ok, all slots assigned and served, and knows every node, and
// every live replica's link to its primary is up.
func (c *Cluster) waitReady(ctx context.Context, within time.Duration) error {
	var last error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = c.ready(ctx); last == nil {
			return nil
		}
	}
	return last
}

func (c *Cluster) ready(ctx context.Context) error {
	for _, node := range c.Nodes {
		if !node.live() {
			continue
		}
		info, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterInfo(ctx).Result() })
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", node.Addr, err)
		}
		f := infoFields(info)
		if f["cluster_state"] != "ok" || f["cluster_slots_assigned"] != "16384" || f["cluster_slots_ok"] != "16384" ||
			f["cluster_known_nodes"] != strconv.Itoa(len(c.Nodes)) {
			return fmt.Errorf("%s: state %s, slots assigned %s, ok %s, known nodes %s", node.Addr, f["cluster_state"],
				f["cluster_slots_assigned"], f["cluster_slots_ok"], f["cluster_known_nodes"])
		}
		repl, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.Info(ctx, "replication").Result() })
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", node.Addr, err)
		}
		if f := infoFields(repl); f["role"] == "slave" && f["master_link_status"] != "up" {
			return fmt.Errorf("%s: replica link %s", node.Addr, f["master_link_status"])
		}
		// Each node's view of the roles has caught up: a replica that just
		// began to follow is still a primary in the others' CLUSTER NODES
		// until gossip tells them.
		nodes, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() })
		if err != nil {
			return fmt.Errorf("%s: CLUSTER NODES: %w", node.Addr, err)
		}
		masters := 0
		for _, l := range parseClusterNodes(nodes) {
			if l.master && !l.fail {
				masters++
			}
		}
		if masters != c.primaries {
			return fmt.Errorf("%s: sees %d primaries, want %d", node.Addr, masters, c.primaries)
		}
	}
	return nil
}

// infoFields parses the name:value lines of an INFO or CLUSTER INFO reply.
func infoFields(info string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			m[k] = v
		}
	}
	return m
}

// URL returns the cluster's URL in go-redis's cluster form
// (redis.ParseClusterURL): redis://node1?addr=node2&addr=…, every node
// (rediss:// for StartClusterTLS).
func (c *Cluster) URL() string {
	scheme := "redis://"
	if c.tls != nil {
		scheme = "rediss://"
	}
	u := scheme + c.Nodes[0].Addr
	for i, node := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + node.Addr
	}
	return u
}

// Addrs returns every node's host:port.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, node := range c.Nodes {
		out = append(out, node.Addr)
	}
	return out
}

// ClientStateReload is the ClusterStateReloadInterval of Cluster.Client:
// go-redis learns of a failover only by reloading the slot map (a dead
// primary sends no MOVED), every 60 s by default.
const ClientStateReload = time.Second

// Client returns a new cluster client seeded with every node, reloading
// the slot map every ClientStateReload, closed with the test.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: ClientStateReload, TLSConfig: c.tls})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Primaries returns the nodes that are primaries now, as the first live
// node sees the cluster.
func (c *Cluster) Primaries(tb testing.TB) []*ClusterNode {
	tb.Helper()
	var out []*ClusterNode
	for _, line := range c.nodesView(tb) {
		if line.master && !line.fail {
			if n := c.byID(line.id); n != nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// PrimaryFor returns the node that serves key's slot now (as the first live
// node sees the cluster).
func (c *Cluster) PrimaryFor(tb testing.TB, key string) *ClusterNode {
	tb.Helper()
	ctx := context.Background()
	node := c.anyLive(tb)
	slot, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (int64, error) { return r.ClusterKeySlot(ctx, key).Result() })
	if err != nil {
		tb.Fatalf("testredis: CLUSTER KEYSLOT: %v", err)
	}
	return c.primaryForSlot(tb, int(slot))
}

func (c *Cluster) primaryForSlot(tb testing.TB, slot int) *ClusterNode {
	tb.Helper()
	for _, line := range c.nodesView(tb) {
		if line.serves(slot) {
			if n := c.byID(line.id); n != nil {
				return n
			}
		}
	}
	tb.Fatalf("testredis: no node serves slot %d", slot)
	return nil
}

// Kill stops the node abruptly (SIGKILL) as Server.Kill does, first
// noting a slot it serves, for Cluster.WaitFailover.
func (n *ClusterNode) Kill(tb testing.TB) {
	tb.Helper()
	n.failSlot = -1
	if n.live() {
		ctx := context.Background()
		if nodes, err := do(ctx, n, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() }); err == nil {
			for _, line := range parseClusterNodes(nodes) {
				if line.id == n.ID && len(line.slots) > 0 {
					n.failSlot = line.slots[0][0]
				}
			}
		}
	}
	n.Server.Kill(tb)
}

// Role returns "master" or "slave", as the node's ROLE command says.
func (n *ClusterNode) Role(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	role, err := do(ctx, n, func(ctx context.Context, r *redis.Client) ([]any, error) { return r.Do(ctx, "ROLE").Slice() })
	if err != nil || len(role) == 0 {
		tb.Fatalf("testredis: ROLE on %s: %v", n.Addr, err)
	}
	s, _ := role[0].(string)
	return s
}

// Client returns a plain (not cluster) client of this one node, closed
// with the test.
func (n *ClusterNode) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: n.Addr, TLSConfig: n.tls})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// WaitFailover waits, at most within, until the slots old served when it
// was killed (ClusterNode.Kill) are served by another node and every live
// node reports cluster_state:ok with all slots served, and returns the new
// primary of those slots.
func (c *Cluster) WaitFailover(tb testing.TB, old *ClusterNode, within time.Duration) *ClusterNode {
	tb.Helper()
	if old.failSlot < 0 {
		tb.Fatalf("testredis: WaitFailover: %s served no slot when it was killed (kill it with ClusterNode.Kill)", old.Addr)
	}
	ctx := context.Background()
	var last error
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var next *ClusterNode
		next, last = c.failedOver(ctx, old)
		if last == nil {
			return next
		}
	}
	tb.Fatalf("testredis: no failover of %s within %v: %v", old.Addr, within, last)
	return nil
}

// failedOver returns the live node serving old.failSlot when every live
// node agrees on it and the cluster is ready.
func (c *Cluster) failedOver(ctx context.Context, old *ClusterNode) (*ClusterNode, error) {
	var owner *ClusterNode
	for _, node := range c.Nodes {
		if !node.live() {
			continue
		}
		view, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() })
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER NODES: %w", node.Addr, err)
		}
		var serving *ClusterNode
		for _, line := range parseClusterNodes(view) {
			if line.serves(old.failSlot) && !line.fail {
				serving = c.byID(line.id)
			}
		}
		if serving == nil || serving == old || !serving.live() {
			return nil, fmt.Errorf("%s: slot %d not served by a live node", node.Addr, old.failSlot)
		}
		if owner != nil && owner != serving {
			return nil, fmt.Errorf("nodes disagree on slot %d: %s and %s", old.failSlot, owner.Addr, serving.Addr)
		}
		owner = serving
	}
	if owner == nil {
		return nil, fmt.Errorf("no live node")
	}
	// The state of every live node: a killed node still counts as known.
	for _, node := range c.Nodes {
		if !node.live() {
			continue
		}
		info, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterInfo(ctx).Result() })
		if err != nil {
			return nil, fmt.Errorf("%s: CLUSTER INFO: %w", node.Addr, err)
		}
		if f := infoFields(info); f["cluster_state"] != "ok" || f["cluster_slots_ok"] != "16384" {
			return nil, fmt.Errorf("%s: state %s, slots ok %s", node.Addr, f["cluster_state"], f["cluster_slots_ok"])
		}
	}
	return owner, nil
}

// WaitReady waits, at most within, until every live node reports
// cluster_state:ok with all slots served and knows every node, and every
// live replica is in sync (e.g. after Restart of a killed node).
func (c *Cluster) WaitReady(tb testing.TB, within time.Duration) {
	tb.Helper()
	if err := c.waitReady(context.Background(), within); err != nil {
		tb.Fatalf("testredis: cluster not ready within %v: %v", within, err)
	}
}

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id           string
	master, fail bool
	slots        [][2]int // inclusive ranges
}

func (l nodeLine) serves(slot int) bool {
	for _, r := range l.slots {
		if slot >= r[0] && slot <= r[1] {
			return true
		}
	}
	return false
}

// parseClusterNodes parses CLUSTER NODES: "<id> <addr> <flags> <master>
// <ping> <pong> <epoch> <link> <slot>…" per line (slots as n or lo-hi;
// importing and migrating entries in brackets are skipped).
func parseClusterNodes(text string) []nodeLine {
	var out []nodeLine
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		l := nodeLine{id: f[0]}
		for _, flag := range strings.Split(f[2], ",") {
			switch flag {
			case "master":
				l.master = true
			case "fail", "fail?":
				l.fail = true
			}
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, err1 := strconv.Atoi(lo)
			b := a
			var err2 error
			if isRange {
				b, err2 = strconv.Atoi(hi)
			}
			if err1 == nil && err2 == nil {
				l.slots = append(l.slots, [2]int{a, b})
			}
		}
		out = append(out, l)
	}
	return out
}

// nodesView is CLUSTER NODES as the first live node sees it.
func (c *Cluster) nodesView(tb testing.TB) []nodeLine {
	tb.Helper()
	ctx := context.Background()
	node := c.anyLive(tb)
	text, err := do(ctx, node, func(ctx context.Context, r *redis.Client) (string, error) { return r.ClusterNodes(ctx).Result() })
	if err != nil {
		tb.Fatalf("testredis: CLUSTER NODES on %s: %v", node.Addr, err)
	}
	return parseClusterNodes(text)
}

func (c *Cluster) anyLive(tb testing.TB) *ClusterNode {
	tb.Helper()
	for _, node := range c.Nodes {
		if node.live() {
			return node
		}
	}
	tb.Fatalf("testredis: no live cluster node")
	return nil
}

func (c *Cluster) byID(id string) *ClusterNode {
	for _, node := range c.Nodes {
		if node.ID == id {
			return node
		}
	}
	return nil
}

// live reports whether the node's process runs and is not paused.
func (n *ClusterNode) live() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil && !n.paused
}

// do runs f on a short-lived plain client of the node, with a 2 s bound.
func do[T any](ctx context.Context, n *ClusterNode, f func(context.Context, *redis.Client) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1, ContextTimeoutEnabled: true, TLSConfig: n.tls})
	defer r.Close()
	return f(ctx, r)
}
