//! Test harness for a real Kubernetes control plane (filled in by the control-plane work).
