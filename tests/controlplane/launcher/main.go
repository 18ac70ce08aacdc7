// gitseal-controlplane starts a throwaway Kubernetes control plane on 127.0.0.1: etcd,
// kube-apiserver (RBAC, static tokens, service accounts) and kube-controller-manager (service
// accounts, namespaces, garbage collection). It prints one ready line and then runs until its
// standard input reaches end of file (or SIGINT/SIGTERM/SIGHUP), then kills everything it
// started and removes its directory.
//
// Tests spawn it with a pipe on stdin that they never close: when the test process exits or is
// killed, the kernel closes the pipe and the launcher cleans up. Its children additionally get
// SIGKILL from the kernel (PR_SET_PDEATHSIG) if the launcher itself is killed.
//
// With -foreground it ignores stdin and prints `export KUBECONFIG=...` for people.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ReadyPrefix starts the single line on stdout that says the control plane is up; the rest of
// the line is a JSON object (readyInfo).
const ReadyPrefix = "GITSEAL_CONTROLPLANE_READY "

type readyInfo struct {
	Server                 string `json:"server"`
	Kubeconfig             string `json:"kubeconfig"`
	UnprivilegedKubeconfig string `json:"unprivileged_kubeconfig"`
	CAFile                 string `json:"ca_file"`
	AuditLog               string `json:"audit_log"`
	Dir                    string `json:"dir"`
	Pid                    int    `json:"pid"`
}

const dirPrefix = "gitseal-controlplane-"

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("gitseal-controlplane: ")

	self, _ := os.Executable()
	binDir := flag.String("bin-dir", filepath.Dir(self), "directory holding etcd, kube-apiserver and kube-controller-manager")
	parent := flag.String("tmp-dir", os.TempDir(), "parent of the run's private directory")
	foreground := flag.Bool("foreground", false, "ignore stdin; run until SIGINT/SIGTERM and print export lines for people")
	timeout := flag.Duration("timeout", 3*time.Minute, "how long to wait for the control plane to become ready")
	keep := flag.Bool("keep", false, "keep the run directory (logs, etcd data) on exit, for debugging")
	flag.Parse()

	os.Exit(run(*binDir, *parent, *foreground, *timeout, *keep))
}

func run(binDir, parent string, foreground bool, timeout time.Duration, keep bool) int {
	// When the test process is gone, so are the readers of our stdout/stderr: a log line must
	// then fail with EPIPE rather than kill us with SIGPIPE before we have cleaned up.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// Stop on stdin EOF (the test process went away) or on a signal.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if !foreground {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	sweepStale(parent)

	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		log.Printf("cannot create the run directory: %v", err)
		return 1
	}
	defer func() {
		if keep {
			log.Printf("kept %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Printf("cannot remove %s: %v", dir, err)
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		log.Printf("%v", err)
		return 1
	}

	// A port picked free can be taken before a child binds it; retry with new ports then.
	var cp *controlPlane
	for attempt := 1; ; attempt++ {
		cp, err = start(ctx, binDir, dir, attempt, timeout)
		if err == nil {
			break
		}
		var pc portConflict
		if errors.As(err, &pc) && attempt < 3 && ctx.Err() == nil {
			log.Printf("attempt %d: %v; retrying with other ports", attempt, err)
			continue
		}
		if ctx.Err() != nil {
			log.Printf("stopped before the control plane was ready")
		} else {
			log.Printf("control plane did not start: %v", err)
		}
		return 1
	}
	defer cp.stop()

	info := readyInfo{
		Server:                 cp.server,
		Kubeconfig:             cp.kubeconfig,
		UnprivilegedKubeconfig: cp.unprivilegedKubeconfig,
		CAFile:                 cp.pki.caCert,
		AuditLog:               cp.auditLog,
		Dir:                    dir,
		Pid:                    os.Getpid(),
	}
	if foreground {
		fmt.Printf("# Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) at %s\n", cp.server)
		fmt.Printf("# admin (system:masters):\nexport KUBECONFIG=%s\n", cp.kubeconfig)
		fmt.Printf("# unprivileged user %q (no RBAC bindings): %s\n", unprivilegedUser, cp.unprivilegedKubeconfig)
		fmt.Printf("# logs: %s/logs — press Ctrl-C to stop and remove everything\n", dir)
	} else {
		line, _ := json.Marshal(info)
		fmt.Printf("%s%s\n", ReadyPrefix, line)
	}

	select {
	case <-ctx.Done():
		log.Printf("stopping")
		return 0
	case d := <-cp.died:
		log.Printf("%s exited unexpectedly (%v); stopping\n%s", d.name, d.err, cp.tails())
		return 1
	}
}

// sweepStale removes run directories of launchers that no longer exist (killed with SIGKILL,
// so they could not clean up). Their processes are already gone thanks to PDEATHSIG.
func sweepStale(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		path := filepath.Join(parent, e.Name())
		b, err := os.ReadFile(filepath.Join(path, "owner.pid"))
		if err != nil {
			continue // not ours, or still being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(path)
		}
	}
}

// freePorts asks the kernel for n distinct free loopback ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
