package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/realtime/realtime/internal/sioclient"
	"github.com/realtime/realtime/internal/testredis"
	"github.com/realtime/realtime/pkg/bus"
)

// writeTLSFiles writes a CA and a certificate for 127.0.0.1 signed by it
// (PEM; for server and client use, as Redis Cluster nodes present it to
// each other on the cluster bus) into dir and returns their paths.
func writeTLSFiles(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "realtime test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("redis.pem", "CERTIFICATE", leafDER), write("redis.key", "EC PRIVATE KEY", keyDER)
}

// A Redis that speaks only TLS and accepts only an ACL user: gateways and
// workers given rediss://user:password@… (trusting its CA through
// SSL_CERT_FILE, as Go does on Linux) serve sessions end to end; a wrong
// password is refused at start with Redis's error.
func TestRedisTLSAndACL(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTLSFiles(t, dir)
	srv := testredis.StartArgs(t, "--port", "0", "--tls-port", "{port}",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
		"--user", "default", "off", "--user", "app", "on", ">s3cret", "~*", "&*", "+@all")
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(pem)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "app", Password: "s3cret",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}})
	t.Cleanup(func() { _ = rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("test client: %v", err)
	}
	c := &cluster{t: t, redis: srv, rdb: rdb, keys: bus.NewKeys("", 0), env: []string{"SSL_CERT_FILE=" + caFile}}
	url := "rediss://app:s3cret@" + srv.Addr + "/0"
	gw := c.gateway("a", "-redis", url)
	c.worker("w", "echo", "-redis", url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, transport := range []string{"websocket", "xhr-polling"} {
		cl, err := sioclient.Dial(ctx, transport, urls(gw)...)
		if err != nil {
			t.Fatalf("%s: %v", transport, err)
		}
		if _, err := cl.NextEvent(ctx, "", "welcome"); err != nil {
			t.Fatalf("%s: %v", transport, err)
		}
		if got, err := cl.EmitAck(ctx, "", "echo", 7); err != nil || string(got) != "[7]" {
			t.Fatalf("%s: echo ack %s, %v", transport, got, err)
		}
		cl.Close()
	}
	// A wrong password: the gateway does not start, and says why.
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "gateway"), "-addr", "127.0.0.1:0", "-admin-addr", "",
		"-redis", "rediss://app:wrong@"+srv.Addr+"/0")
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "WRONGPASS") {
		t.Errorf("gateway with a wrong password: %v\n%s", err, out)
	}
}
