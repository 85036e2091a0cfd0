package clinic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/medinaii/iomt-operator/controllers"
	"github.com/medinaii/iomt-operator/internal/segment"
)

// StartOperator runs the operator's controllers in this process against
// cfg, with metrics and health probes off, until ctx ends. It returns once
// the operator's caches are filled.
//
// Device identity runs too, its CA in the operator's namespace, which
// StartOperator creates; so does the attestation endpoint, on a free port
// of 127.0.0.1.
func StartOperator(ctx context.Context, cfg *rest.Config) (*Operator, error) {
	addr, err := freeAddress()
	if err != nil {
		return nil, err
	}
	opts := controllers.Options{
		Segment:     segment.DefaultConfig(),
		Identity:    &controllers.IdentityOptions{},
		Attestation: &controllers.AttestationOptions{Addr: addr, Hosts: []string{"localhost"}},
	}
	op := &Operator{AttestationURL: "https://localhost:" + addr[strings.LastIndex(addr, ":")+1:]}
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: controllers.DefaultNamespace}}
	if err := client.IgnoreAlreadyExists(c.Create(ctx, ns)); err != nil {
		return nil, fmt.Errorf("failed to create the operator's namespace: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 controllers.NewScheme(),
		Cache:                  controllers.CacheOptions(opts),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Controller names are unique per process; tests may start the
		// operator more than once.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the operator's manager: %w", err)
	}
	if err := controllers.Setup(ctx, mgr, opts); err != nil {
		return nil, fmt.Errorf("failed to set up the operator's controllers: %w", err)
	}

	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	synced := make(chan bool, 1)
	go func() { synced <- mgr.GetCache().WaitForCacheSync(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			err = errors.New("it stopped before its caches were filled")
		}
		return nil, fmt.Errorf("failed to start the operator: %w", err)
	case ok := <-synced:
		if !ok {
			return nil, fmt.Errorf("failed to start the operator: %w", ctx.Err())
		}
	}
	op.Done = done
	return op, nil
}

// Operator is an operator running in this process.
type Operator struct {
	// Done receives what the manager returned when it stops, nil after a
	// clean shutdown.
	Done <-chan error
	// AttestationURL is where it takes verifier reports.
	AttestationURL string
}

// freeAddress returns a loopback address with a port nobody listens on.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("failed to find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// NewClient returns a client that reads straight from the API server,
// without a cache, and knows the operator's kinds.
func NewClient(cfg *rest.Config) (client.Client, error) {
	c, err := client.New(cfg, client.Options{Scheme: controllers.NewScheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	return c, nil
}
