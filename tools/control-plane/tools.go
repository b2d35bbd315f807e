//go:build tools

// Package tools pins the commands this module builds: the control plane the
// integration tests start (etcd, kube-apiserver) and the node components the
// real-node tier adds (kubelet, kube-controller-manager, kube-scheduler, kubectl).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
