package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

const (
	// AttestationLabel marks the operator pod that serves the attestation
	// endpoint, which is the leader: the chart's attestation Service
	// (iomt-operator-attestation) selects pods by it, so verifiers only
	// reach a replica that listens.
	AttestationLabel = "iomt.medinaii.io/attestation"
	// AttestationServing is the value of AttestationLabel on the leader's
	// pod. Other pods do not carry the label at all.
	AttestationServing = "serving"
)

const (
	// withdrawTimeout bounds the removal of the label once leadership ends.
	withdrawTimeout = 5 * time.Second
	// labelRetryFirst and labelRetryCap bound the wait between attempts to
	// label the pod after an error.
	labelRetryFirst = 500 * time.Millisecond
	labelRetryCap   = 30 * time.Second
)

// LeaderLabel puts AttestationLabel on the operator's own pod while this
// replica is the leader, and takes it off otherwise. It writes only when
// leadership changes, never in a steady state.
//
// It needs get and patch on pods in the operator's own namespace, and
// nothing on pods elsewhere: a Role, not a ClusterRole.
type LeaderLabel struct {
	client    client.Client
	namespace string
	name      string
}

var _ manager.LeaderElectionRunnable = (*LeaderLabel)(nil)

// NewLeaderLabel labels pod namespace/name through c. The client must not
// depend on the manager's cache: Withdraw runs before the manager starts.
// An empty name turns the label off, for an operator running outside the
// cluster (make run): Start only waits, Withdraw does nothing, and c is
// never used.
func NewLeaderLabel(c client.Client, namespace, name string) *LeaderLabel {
	return &LeaderLabel{client: c, namespace: namespace, name: name}
}

// NeedLeaderElection runs Start on the leader only.
func (l *LeaderLabel) NeedLeaderElection() bool { return true }

// Start labels the pod once this replica is elected, retrying until it
// succeeds or ctx ends, and withdraws the label when ctx ends.
func (l *LeaderLabel) Start(ctx context.Context) error {
	if l.name == "" {
		<-ctx.Done()
		return nil
	}
	l.label(ctx)

	// Hold the label until leadership ends, then give it up. The manager's
	// context is gone by then, so the removal gets one of its own.
	<-ctx.Done()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	if err := l.Withdraw(wctx); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to withdraw the attestation label; "+
			"the Service keeps this pod until it stops being ready")
	}
	return nil
}

// label sets the label, backing off while the API server refuses, until it
// succeeds or ctx ends. Once the delay reaches its cap, Step keeps returning
// the cap.
func (l *LeaderLabel) label(ctx context.Context) {
	backoff := wait.Backoff{Duration: labelRetryFirst, Factor: 2, Jitter: 0.2, Steps: math.MaxInt32,
		Cap: labelRetryCap}
	for {
		err := l.set(ctx, AttestationServing)
		if err == nil || ctx.Err() != nil {
			return
		}
		delay := backoff.Step()
		ctrl.LoggerFrom(ctx).Error(err, "Failed to label this pod as the attestation server; retrying",
			"delay", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// Withdraw takes the label off the pod. It reads the pod first and writes
// only when the label is there. Run it before the manager starts, so that a
// container restarted after losing leadership does not become ready while
// still carrying the label. A missing pod is an error: the name is wrong.
func (l *LeaderLabel) Withdraw(ctx context.Context) error {
	if l.name == "" {
		return nil
	}
	return l.set(ctx, "")
}

// set makes the label's value on the pod value, "" meaning absent, with one
// read and, if the value differs, one merge patch that touches only the
// label.
func (l *LeaderLabel) set(ctx context.Context, value string) error {
	var pod corev1.Pod
	if err := l.client.Get(ctx, types.NamespacedName{Namespace: l.namespace, Name: l.name}, &pod); err != nil {
		return fmt.Errorf("failed to get pod %s/%s: %w", l.namespace, l.name, err)
	}
	current, present := pod.Labels[AttestationLabel]
	if (value == "" && !present) || (value != "" && present && current == value) {
		return nil
	}

	// A null value in a merge patch deletes the key.
	var patched any
	if value != "" {
		patched = value
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": map[string]any{AttestationLabel: patched}},
	})
	if err != nil {
		return fmt.Errorf("failed to encode the label patch: %w", err)
	}
	if err := l.client.Patch(ctx, &pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("failed to patch pod %s/%s: %w", l.namespace, l.name, err)
	}

	log := ctrl.LoggerFrom(ctx).WithValues("pod", klog.KObj(&pod))
	if value != "" {
		log.Info("Serving attestation from this pod")
	} else {
		log.Info("Stopped serving attestation from this pod")
	}
	return nil
}
