package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has been reaped
	err  error         // valid after done
}

type death struct {
	name string
	err  error
}

type controlPlane struct {
	dir                    string
	pki                    *pki
	server                 string
	kubeconfig             string
	unprivilegedKubeconfig string
	auditLog               string
	children               []*child
	died                   chan death
	stopping               chan struct{}
}

// portConflict marks a start that failed because a child could not bind its port.
type portConflict struct{ err error }

func (p portConflict) Error() string { return p.err.Error() }
func (p portConflict) Unwrap() error { return p.err }

// start brings up etcd, kube-apiserver and kube-controller-manager and waits until the API
// server is ready and the controller manager has created the default service account.
func start(ctx context.Context, binDir, dir string, attempt int, timeout time.Duration) (*controlPlane, error) {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s (run tests/controlplane/build.sh): %w", b, binDir, err)
		}
	}
	// Each attempt gets fresh state; only logs of the last attempt matter.
	for _, sub := range []string{"etcd-data", "logs", "pki"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		return nil, err
	}
	p, err := newPKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, fmt.Errorf("generating certificates and keys: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	cp := &controlPlane{
		dir:                    dir,
		pki:                    p,
		server:                 fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		kubeconfig:             filepath.Join(dir, "admin.kubeconfig"),
		unprivilegedKubeconfig: filepath.Join(dir, "unprivileged.kubeconfig"),
		auditLog:               filepath.Join(dir, "logs", "audit.log"),
		died:                   make(chan death, 3),
		stopping:               make(chan struct{}),
	}
	if err := writeKubeconfig(cp.kubeconfig, cp.server, p.caPEM, adminUser, p.adminToken); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(cp.unprivilegedKubeconfig, cp.server, p.caPEM, unprivilegedUser, p.unprivilegedToken); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ok := false
	defer func() {
		if !ok {
			cp.stop()
		}
	}()
	fail := func(stage string, err error) error {
		tails := cp.tails()
		if strings.Contains(tails, "address already in use") {
			return portConflict{fmt.Errorf("%s: %w\n%s", stage, err, tails)}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("not ready after %s", timeout)
		}
		return fmt.Errorf("%s: %w\n%s", stage, err, tails)
	}

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	etcd, err := cp.spawn(binDir, "etcd",
		"--name=gitseal",
		"--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=gitseal="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return nil, err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := waitFor(ctx, etcd, func() bool {
		body, code := get(plain, etcdURL+"/health", "")
		return code == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
	}); err != nil {
		return nil, fail("waiting for etcd", err)
	}

	// Every request, at Metadata level (no bodies, so no secret values): tests read it to see
	// who sent what, e.g. the User-Agent of every request of the agent.
	auditPolicy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(auditPolicy, []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: Metadata\n"), 0o600); err != nil {
		return nil, err
	}
	api, err := cp.spawn(binDir, "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(dir, "pki"),
		"--tls-cert-file="+p.servingCert,
		"--tls-private-key-file="+p.servingKey,
		"--client-ca-file="+p.caCert,
		"--token-auth-file="+p.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer="+cp.server,
		"--service-account-key-file="+p.saPub,
		"--service-account-signing-key-file="+p.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		// No kubelets or nodes: do not publish the loopback address as the endpoint of the
		// `kubernetes` Service.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--audit-policy-file="+auditPolicy,
		"--audit-log-path="+cp.auditLog,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
	)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	secure := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	if err := waitFor(ctx, api, func() bool {
		_, code := get(secure, cp.server+"/readyz", p.adminToken)
		return code == http.StatusOK
	}); err != nil {
		return nil, fail("waiting for kube-apiserver /readyz", err)
	}

	kcmKubeconfig := filepath.Join(dir, "kube-controller-manager.kubeconfig")
	if err := writeKubeconfig(kcmKubeconfig, cp.server, p.caPEM, adminUser, p.adminToken); err != nil {
		return nil, err
	}
	kcm, err := cp.spawn(binDir, "kube-controller-manager",
		"--kubeconfig="+kcmKubeconfig,
		"--controllers="+strings.Join([]string{
			"serviceaccount-token-controller",
			"serviceaccount-controller",
			"namespace-controller",
			"garbage-collector-controller",
			"root-ca-certificate-publisher-controller",
			"clusterrole-aggregation-controller",
		}, ","),
		"--service-account-private-key-file="+p.saKey,
		"--root-ca-file="+p.caCert,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0", // nothing to serve: readiness is judged through the API server
		"--profiling=false",
	)
	if err != nil {
		return nil, err
	}
	// The default ServiceAccount appears once the controller manager is working.
	if err := waitFor(ctx, kcm, func() bool {
		_, code := get(secure, cp.server+"/api/v1/namespaces/default/serviceaccounts/default", p.adminToken)
		return code == http.StatusOK
	}); err != nil {
		return nil, fail("waiting for kube-controller-manager to create the default ServiceAccount", err)
	}
	ok = true
	return cp, nil
}

func (cp *controlPlane) spawn(binDir, name string, args ...string) (*child, error) {
	logPath := filepath.Join(cp.dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Stdin = nil
	cmd.Dir = cp.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// The kernel kills the child when the launcher dies, however it dies. (It fires when the
		// forking OS thread exits; the Go runtime does not retire threads of unlocked goroutines.)
		Pdeathsig: syscall.SIGKILL,
		// Own process group: a Ctrl-C in the terminal reaches only the launcher, which then
		// stops the children itself.
		Setpgid: true,
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cp.children = append(cp.children, c)
	go func() {
		c.err = cmd.Wait()
		_ = f.Close()
		close(c.done)
		select {
		case <-cp.stopping:
		default:
			cp.died <- death{name: name, err: c.err}
		}
	}()
	return c, nil
}

// stop kills every child (SIGKILL: the state is thrown away anyway) and waits until reaped.
func (cp *controlPlane) stop() {
	select {
	case <-cp.stopping:
		return
	default:
		close(cp.stopping)
	}
	for i := len(cp.children) - 1; i >= 0; i-- {
		c := cp.children[i]
		if c.cmd.Process != nil {
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, c := range cp.children {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			log.Printf("%s (pid %d) did not exit after SIGKILL", c.name, c.cmd.Process.Pid)
		}
	}
}

// tails returns the last lines of every child's log, for error messages.
func (cp *controlPlane) tails() string {
	var b strings.Builder
	for _, c := range cp.children {
		fmt.Fprintf(&b, "--- last lines of %s (%s) ---\n%s", c.name, c.log, tail(c.log, 25))
	}
	return b.String()
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)\n", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// waitFor polls check until it is true, the child exits, or ctx ends.
func waitFor(ctx context.Context, c *child, check func() bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if check() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return fmt.Errorf("%s exited: %v", c.name, c.err)
		case <-tick.C:
		}
	}
}

func get(client *http.Client, url, token string) ([]byte, int) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return body, resp.StatusCode
}
