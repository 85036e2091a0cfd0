package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Labels on the serving certificate's Secret.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedByValue = "iomt-operator"
)

// retryInterval is how soon a failed pass is tried again.
const retryInterval = 5 * time.Second

// CertRotator keeps the webhook server's serving certificate. One Secret in
// the operator's namespace holds it for every replica. Each pass, the
// rotator issues a new certificate into the Secret when there is none or
// when it is due, makes both webhook configurations' caBundle trust it, and
// then writes the key pair where the webhook server reads it. Writes happen
// only when something differs, so a steady cluster sees none.
//
// Every replica runs it, because every replica serves webhooks.
type CertRotator struct {
	// Client writes the Secret and the webhook configurations.
	Client client.Client
	// Reader reads them from the API server. The manager's cache is not
	// used: it would hold every Secret in the cluster.
	Reader client.Reader
	// Options name the Secret, the configurations, the Service, the
	// directory, the lifetime and the interval.
	Options Options
	// Now tells the time; time.Now when nil.
	Now func() time.Time

	ready atomic.Bool
}

var (
	_ manager.Runnable               = &CertRotator{}
	_ manager.LeaderElectionRunnable = &CertRotator{}
)

// NewCertRotator returns a rotator that reads and writes through mgr's
// connection to the API server.
func NewCertRotator(mgr manager.Manager, opts Options) *CertRotator {
	return &CertRotator{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Options: opts.withDefaults()}
}

// NeedLeaderElection is false: every replica needs the key pair on disk.
func (r *CertRotator) NeedLeaderElection() bool { return false }

// Start runs a pass at once and then every CertCheckInterval until ctx ends.
// A failed pass is logged and tried again sooner.
func (r *CertRotator) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-certificates")
	ctx = log.IntoContext(ctx, logger)
	for {
		wait := r.Options.withDefaults().CertCheckInterval
		if err := r.Sync(ctx); err != nil {
			logger.Error(err, "Webhook serving certificate is not in place yet")
			wait = min(wait, retryInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Checker is a readiness check: it passes once the webhook server has the
// certificate that the webhook configurations trust.
func (r *CertRotator) Checker(_ *http.Request) error {
	if !r.ready.Load() {
		return errors.New("webhook serving certificate is not in place yet")
	}
	return nil
}

// Prime writes a throwaway key pair into the certificate directory when it
// holds none, so that the webhook server can start before the first pass;
// the readiness check fails until that pass has put the real one there.
func (r *CertRotator) Prime() error {
	opts := r.Options.withDefaults()
	have, err := readServingFiles(opts.CertDir)
	if err != nil {
		return err
	}
	if _, err := tls.X509KeyPair(have.CertPEM, have.KeyPEM); err == nil {
		return nil
	}
	sc, err := issueServingCert(r.hosts(), time.Hour, r.now(), nil)
	if err != nil {
		return err
	}
	return writeServingFiles(opts.CertDir, sc)
}

// Sync makes one pass: Secret, then caBundle, then files.
func (r *CertRotator) Sync(ctx context.Context) error {
	opts := r.Options.withDefaults()
	sc, err := r.ensureSecret(ctx, opts)
	if err != nil {
		return err
	}
	// The API server must trust the certificate before it is served.
	if err := r.ensureCABundle(ctx, opts, sc.CAPEM); err != nil {
		return err
	}
	have, err := readServingFiles(opts.CertDir)
	if err != nil {
		return err
	}
	if !bytes.Equal(have.CertPEM, sc.CertPEM) || !bytes.Equal(have.KeyPEM, sc.KeyPEM) {
		if err := writeServingFiles(opts.CertDir, sc); err != nil {
			return err
		}
		log.FromContext(ctx).Info("Wrote webhook serving certificate", "dir", opts.CertDir)
	}
	r.ready.Store(true)
	return nil
}

// ensureSecret returns the serving certificate in the Secret, issuing a new
// one first when the Secret is missing or its certificate is due.
func (r *CertRotator) ensureSecret(ctx context.Context, opts Options) (servingCert, error) {
	key := client.ObjectKey{Namespace: opts.OperatorNamespace, Name: opts.SecretName}
	var secret corev1.Secret
	err := r.Reader.Get(ctx, key, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return servingCert{}, fmt.Errorf("failed to read Secret %s: %w", key, err)
	}
	found := err == nil
	have := servingCert{
		CertPEM: secret.Data[corev1.TLSCertKey],
		KeyPEM:  secret.Data[corev1.TLSPrivateKeyKey],
		CAPEM:   secret.Data[identityCAKey],
	}
	hosts := r.hosts()
	reason := "the Secret does not exist"
	if found {
		if reason = renewalReason(have, hosts, r.now()); reason == "" {
			return have, nil
		}
	}

	// Keep trusting what the API server trusts now, so that replicas still
	// serving the old certificate are not cut off while they catch up.
	previous := append(bytes.Clone(have.CAPEM), r.currentCABundle(ctx, opts)...)
	sc, err := issueServingCert(hosts, opts.CertLifetime, r.now(), previous)
	if err != nil {
		return servingCert{}, err
	}
	secret.Labels = mergeLabels(secret.Labels, map[string]string{managedByLabel: managedByValue})
	secret.Type = corev1.SecretTypeTLS
	secret.Data = map[string][]byte{
		corev1.TLSCertKey:       sc.CertPEM,
		corev1.TLSPrivateKeyKey: sc.KeyPEM,
		identityCAKey:           sc.CAPEM,
	}
	if found {
		// The resourceVersion read above makes a replica that lost a race
		// fail here and adopt the winner's certificate on its next pass.
		err = r.Client.Update(ctx, &secret)
	} else {
		secret.ObjectMeta = metav1.ObjectMeta{
			Namespace: key.Namespace, Name: key.Name, Labels: secret.Labels,
		}
		err = r.Client.Create(ctx, &secret)
	}
	if err != nil {
		return servingCert{}, fmt.Errorf("failed to write Secret %s: %w", key, err)
	}
	log.FromContext(ctx).Info("Issued webhook serving certificate", "secret", key, "reason", reason)
	return sc, nil
}

// currentCABundle returns the caBundle the mutating configuration carries
// now, or nothing.
func (r *CertRotator) currentCABundle(ctx context.Context, opts Options) []byte {
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := r.Reader.Get(ctx, client.ObjectKey{Name: opts.ConfigurationName}, &mwc); err != nil {
		return nil
	}
	var all []byte
	for _, w := range mwc.Webhooks {
		all = append(all, w.ClientConfig.CABundle...)
	}
	return all
}

// ensureCABundle sets caBundle on every webhook of both configurations that
// does not carry bundle yet. A configuration that is not installed is
// skipped: nothing calls the webhooks then.
//
// TODO: the configurations are compared once per CertCheckInterval, not
// watched, so a caBundle that a redeploy empties is restored up to a minute
// later and device pods are refused until then.
func (r *CertRotator) ensureCABundle(ctx context.Context, opts Options, bundle []byte) error {
	key := client.ObjectKey{Name: opts.ConfigurationName}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	err := r.Reader.Get(ctx, key, &mwc)
	switch {
	case apierrors.IsNotFound(err):
		log.FromContext(ctx).V(1).Info("No MutatingWebhookConfiguration to update", "name", key.Name)
	case err != nil:
		return fmt.Errorf("failed to read MutatingWebhookConfiguration %s: %w", key.Name, err)
	default:
		base := mwc.DeepCopy()
		changed := false
		for i := range mwc.Webhooks {
			changed = setCABundle(&mwc.Webhooks[i].ClientConfig, bundle) || changed
		}
		if err := r.patchIf(ctx, changed, &mwc, base); err != nil {
			return err
		}
	}

	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	err = r.Reader.Get(ctx, key, &vwc)
	switch {
	case apierrors.IsNotFound(err):
		log.FromContext(ctx).V(1).Info("No ValidatingWebhookConfiguration to update", "name", key.Name)
	case err != nil:
		return fmt.Errorf("failed to read ValidatingWebhookConfiguration %s: %w", key.Name, err)
	default:
		base := vwc.DeepCopy()
		changed := false
		for i := range vwc.Webhooks {
			changed = setCABundle(&vwc.Webhooks[i].ClientConfig, bundle) || changed
		}
		if err := r.patchIf(ctx, changed, &vwc, base); err != nil {
			return err
		}
	}
	return nil
}

// patchIf sends the difference between base and obj when changed, guarded
// by the resourceVersion read.
func (r *CertRotator) patchIf(ctx context.Context, changed bool, obj, base client.Object) error {
	if !changed {
		return nil
	}
	patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
	if err := r.Client.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("failed to update caBundle of %T %s: %w", obj, obj.GetName(), err)
	}
	log.FromContext(ctx).Info("Updated webhook caBundle", "configuration", obj.GetName(),
		"kind", fmt.Sprintf("%T", obj))
	return nil
}

func setCABundle(cc *admissionregistrationv1.WebhookClientConfig, bundle []byte) bool {
	if bytes.Equal(cc.CABundle, bundle) {
		return false
	}
	cc.CABundle = bytes.Clone(bundle)
	return true
}

// hosts are the names the API server may reach the webhook server by.
func (r *CertRotator) hosts() []string {
	opts := r.Options.withDefaults()
	svc, ns := opts.ServiceName, opts.OperatorNamespace
	hosts := []string{
		svc + "." + ns + ".svc",
		svc + "." + ns + ".svc.cluster.local",
		svc + "." + ns,
		svc,
	}
	return append(hosts, opts.CertHosts...)
}

func (r *CertRotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// readServingFiles reads the key pair in dir; missing files read as empty.
func readServingFiles(dir string) (servingCert, error) {
	var sc servingCert
	for name, dst := range map[string]*[]byte{
		corev1.TLSCertKey: &sc.CertPEM, corev1.TLSPrivateKeyKey: &sc.KeyPEM,
	} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return servingCert{}, fmt.Errorf("failed to read %s: %w", name, err)
		}
		*dst = b
	}
	return sc, nil
}

// writeServingFiles replaces the key pair in dir, each file by a rename so
// that a reader never sees half a file. The webhook server reloads on either
// file and refuses a certificate that does not match its key, so it keeps
// serving the old pair until both new files are in place.
func writeServingFiles(dir string, sc servingCert) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{corev1.TLSPrivateKeyKey, sc.KeyPEM}, {corev1.TLSCertKey, sc.CertPEM}} {
		tmp, err := os.CreateTemp(dir, "."+f.name+"-")
		if err != nil {
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, f.name)); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("failed to write %s: %w", f.name, err)
		}
	}
	return nil
}

func mergeLabels(have, want map[string]string) map[string]string {
	out := make(map[string]string, len(have)+len(want))
	for k, v := range have {
		out[k] = v
	}
	for k, v := range want {
		out[k] = v
	}
	return out
}
