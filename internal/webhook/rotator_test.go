package webhook

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// rotatorWorld is a fake cluster with both webhook configurations
// installed, and a rotator whose clock the test moves.
type rotatorWorld struct {
	rot    *CertRotator
	c      client.Client
	now    time.Time
	writes int
	opts   Options
}

func newRotatorWorld(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *rotatorWorld {
	t.Helper()
	w := &rotatorWorld{now: epoch}
	w.opts = Options{VerifierImage: testImage, CertDir: t.TempDir(), CertHosts: []string{"127.0.0.1"}}.
		withDefaults()
	s := testScheme(t)
	if err := admissionregistrationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	count := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object,
			o ...client.CreateOption) error {
			w.writes++
			return c.Create(ctx, obj, o...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object,
			o ...client.UpdateOption) error {
			w.writes++
			if funcs.Update != nil {
				return funcs.Update(ctx, c, obj, o...)
			}
			return c.Update(ctx, obj, o...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch,
			o ...client.PatchOption) error {
			w.writes++
			return c.Patch(ctx, obj, p, o...)
		},
	}
	w.c = fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithInterceptorFuncs(count).Build()
	w.rot = &CertRotator{Client: w.c, Reader: w.c, Options: w.opts, Now: func() time.Time { return w.now }}
	return w
}

func installed(opts Options) []client.Object {
	return []client.Object{MutatingConfiguration(opts), ValidatingConfiguration(opts)}
}

func TestCertRotator(t *testing.T) {
	ctx := context.Background()
	opts := Options{}.withDefaults()
	w := newRotatorWorld(t, interceptor.Funcs{}, installed(opts)...)
	if w.rot.Checker(nil) == nil {
		t.Fatalf("ready before the first pass")
	}

	// First pass: Secret, caBundle, files.
	if err := w.rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	first := w.check(t)
	if w.rot.Checker(nil) != nil {
		t.Errorf("not ready after a pass")
	}

	// Steady: nothing is written.
	w.writes = 0
	w.now = w.now.Add(59 * 24 * time.Hour)
	for range 3 {
		if err := w.rot.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if w.writes != 0 {
		t.Errorf("%d writes in a steady state, want none", w.writes)
	}

	// Past two thirds of its life the certificate is replaced, and the old
	// CA stays trusted.
	w.now = w.now.Add(2 * 24 * time.Hour)
	if err := w.rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	second := w.check(t)
	if bytes.Equal(second.CertPEM, first.CertPEM) {
		t.Fatalf("certificate not renewed")
	}
	if cas := parseCertificates(second.CAPEM); len(cas) != 2 ||
		!cas[1].Equal(parseCertificates(first.CAPEM)[0]) {
		t.Errorf("bundle does not keep the previous CA")
	}
}

func TestCertRotatorRepairsCABundle(t *testing.T) {
	ctx := context.Background()
	w := newRotatorWorld(t, interceptor.Funcs{}, installed(Options{}.withDefaults())...)
	if err := w.rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := w.c.Get(ctx, client.ObjectKey{Name: DefaultConfigurationName}, &vwc); err != nil {
		t.Fatal(err)
	}
	vwc.Webhooks[0].ClientConfig.CABundle = nil
	if err := w.c.Update(ctx, &vwc); err != nil {
		t.Fatal(err)
	}
	if err := w.rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	w.check(t)
}

func TestCertRotatorWithoutConfigurations(t *testing.T) {
	w := newRotatorWorld(t, interceptor.Funcs{})
	if err := w.rot.Sync(context.Background()); err != nil {
		t.Fatalf("failed without webhook configurations: %v", err)
	}
	if _, err := os.Stat(filepath.Join(w.opts.CertDir, "tls.crt")); err != nil {
		t.Errorf("no certificate written: %v", err)
	}
}

func TestCertRotatorReplacesBrokenSecret(t *testing.T) {
	opts := Options{}.withDefaults()
	broken := &corev1.Secret{}
	broken.Namespace, broken.Name = opts.OperatorNamespace, opts.SecretName
	broken.Data = map[string][]byte{"tls.crt": []byte("not a certificate")}
	w := newRotatorWorld(t, interceptor.Funcs{}, append(installed(opts), broken)...)
	if err := w.rot.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.check(t)
}

func TestCertRotatorLosingARaceWritesNoFiles(t *testing.T) {
	ctx := context.Background()
	lose := false
	w := newRotatorWorld(t, interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object,
			o ...client.UpdateOption) error {
			if lose {
				return apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, obj.GetName(), nil)
			}
			return c.Update(ctx, obj, o...)
		},
	}, installed(Options{}.withDefaults())...)
	if err := w.rot.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	before, _ := readServingFiles(w.opts.CertDir)

	lose = true
	w.now = w.now.Add(61 * 24 * time.Hour)
	if err := w.rot.Sync(ctx); !apierrors.IsConflict(err) {
		t.Fatalf("Sync() = %v, want the conflict", err)
	}
	after, _ := readServingFiles(w.opts.CertDir)
	if !bytes.Equal(before.CertPEM, after.CertPEM) {
		t.Errorf("files changed although the Secret was not written")
	}
}

func TestCertRotatorPrime(t *testing.T) {
	w := newRotatorWorld(t, interceptor.Funcs{})
	if err := w.rot.Prime(); err != nil {
		t.Fatal(err)
	}
	primed, _ := readServingFiles(w.opts.CertDir)
	if _, err := tlsPair(primed); err != nil {
		t.Fatalf("primed pair does not load: %v", err)
	}
	if err := w.rot.Prime(); err != nil {
		t.Fatal(err)
	}
	again, _ := readServingFiles(w.opts.CertDir)
	if !bytes.Equal(primed.CertPEM, again.CertPEM) {
		t.Errorf("a loadable pair was replaced")
	}
	if w.rot.Checker(nil) == nil {
		t.Errorf("ready on a throwaway certificate")
	}
}

// check verifies that the Secret, both caBundles and the files agree and
// that the certificate is good, and returns it.
func (w *rotatorWorld) check(t *testing.T) servingCert {
	t.Helper()
	ctx := context.Background()
	var secret corev1.Secret
	key := client.ObjectKey{Namespace: w.opts.OperatorNamespace, Name: w.opts.SecretName}
	if err := w.c.Get(ctx, key, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != corev1.SecretTypeTLS || secret.Labels[managedByLabel] != managedByValue {
		t.Errorf("Secret type %q labels %v", secret.Type, secret.Labels)
	}
	sc := servingCert{secret.Data["tls.crt"], secret.Data["tls.key"], secret.Data["ca.crt"]}
	if reason := renewalReason(sc, w.rot.hosts(), w.now); reason != "" {
		t.Errorf("stored certificate is not good: %s", reason)
	}
	leaf := leafOf(t, sc.CertPEM)
	if err := leaf.VerifyHostname("iomt-operator-webhook.iomt-system.svc"); err != nil {
		t.Errorf("not valid for the Service: %v", err)
	}

	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	name := client.ObjectKey{Name: w.opts.ConfigurationName}
	if err := w.c.Get(ctx, name, &mwc); err != nil {
		t.Fatal(err)
	}
	if err := w.c.Get(ctx, name, &vwc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mwc.Webhooks[0].ClientConfig.CABundle, sc.CAPEM) ||
		!bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, sc.CAPEM) {
		t.Errorf("caBundle differs from the Secret's ca.crt")
	}

	files, err := readServingFiles(w.opts.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(files.CertPEM, sc.CertPEM) || !bytes.Equal(files.KeyPEM, sc.KeyPEM) {
		t.Errorf("files differ from the Secret")
	}
	return sc
}
