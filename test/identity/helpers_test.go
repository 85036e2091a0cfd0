package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/identity"
)

// newNamespace creates a namespace with a random name.
func newNamespace(ctx context.Context, labels, annotations map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "clinic-" + utilrand.String(6), Labels: labels, Annotations: annotations,
	}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newDevice creates an infusion pump, changed by the options.
func newDevice(ctx context.Context, ns, name string, opts ...func(*iomtv1.MedicalDevice)) *iomtv1.MedicalDevice {
	d := &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: iomtv1.MedicalDeviceSpec{
			Class: iomtv1.ClassInfusionPump, Criticality: iomtv1.CriticalityHigh,
			Manufacturer: "Baxter", Model: "Sigma Spectrum",
		},
	}
	for _, o := range opts {
		o(d)
	}
	Expect(k8s.Create(ctx, d)).To(Succeed())
	return d
}

func withDNSNames(names ...string) func(*iomtv1.MedicalDevice) {
	return func(d *iomtv1.MedicalDevice) {
		if d.Spec.Identity == nil {
			d.Spec.Identity = &iomtv1.DeviceIdentity{}
		}
		d.Spec.Identity.DNSNames = names
	}
}

func withLifetime(l time.Duration) func(*iomtv1.MedicalDevice) {
	return func(d *iomtv1.MedicalDevice) {
		if d.Spec.Identity == nil {
			d.Spec.Identity = &iomtv1.DeviceIdentity{}
		}
		d.Spec.Identity.Lifetime = &metav1.Duration{Duration: l}
	}
}

func withLabels(kv map[string]string) func(*iomtv1.MedicalDevice) {
	return func(d *iomtv1.MedicalDevice) { d.Labels = kv }
}

func spiffeID(ns, name string) string {
	return fmt.Sprintf("spiffe://iomt.local/ns/%s/device/%s", ns, name)
}

// issued waits until the device reports a valid certificate and returns it.
func issued(ctx context.Context, ns, name string) *iomtv1.MedicalDevice {
	var d iomtv1.MedicalDevice
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d)).To(Succeed())
		c := meta.FindStatusCondition(d.Status.Conditions, iomtv1.ConditionIdentityIssued)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
		g.Expect(d.Status.Identity).NotTo(BeNil())
	}).Should(Succeed())
	return &d
}

// secretLeaf reads a device's identity Secret and its certificate.
func secretLeaf(ctx context.Context, ns, name string) (*corev1.Secret, *x509.Certificate, error) {
	var s corev1.Secret
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.IdentitySecretName(name)}, &s); err != nil {
		return nil, nil, err
	}
	leaf, err := identity.ParseLeaf(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		return &s, nil, err
	}
	return &s, leaf.Cert, nil
}

// bundleIn reads a namespace's trust bundle.
func bundleIn(ctx context.Context, ns string) ([]byte, error) {
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: iomtv1.TrustBundleName}, &cm); err != nil {
		return nil, err
	}
	return []byte(cm.Data["ca.crt"]), nil
}

// verify checks a device certificate against a PEM bundle for both TLS
// client and server use, at a given time.
func verify(leaf *x509.Certificate, bundle []byte, at time.Time) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return fmt.Errorf("the bundle holds no certificate")
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: at,
			KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			return err
		}
	}
	return nil
}

// caSecret reads the operator's CA Secret.
func caSecret(ctx context.Context) *corev1.Secret {
	var s corev1.Secret
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: iomtv1.CASecretName}, &s)).
		To(Succeed())
	return &s
}

// eventReasons lists the reasons of the Events about an object.
func eventReasons(ctx context.Context, ns, name string) []string {
	var list eventsv1.EventList
	Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// certManagerStandIn plays cert-manager's part, as cert-manager would: it
// signs what a Certificate asks for with its own CA and writes the Secret
// named by spec.secretName, of type kubernetes.io/tls, holding tls.crt,
// tls.key and ca.crt, with the labels of spec.secretTemplate and
// cert-manager's annotations.
type certManagerStandIn struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCertManagerStandIn() *certManagerStandIn {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stand-in cert-manager CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	cert, err := x509.ParseCertificate(der)
	Expect(err).NotTo(HaveOccurred())
	return &certManagerStandIn{cert: cert, key: key}
}

func (s *certManagerStandIn) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw})
}

// issue serves the Certificate ns/name once and returns the serial number
// it wrote, in hex.
func (s *certManagerStandIn) issue(ctx context.Context, ns, name string) string {
	crt := &unstructured.Unstructured{}
	crt.SetAPIVersion("cert-manager.io/v1")
	crt.SetKind("Certificate")
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, crt)).To(Succeed())
	spec := crt.Object["spec"].(map[string]any)

	var uris []*url.URL
	for _, u := range spec["uris"].([]any) {
		parsed, err := url.Parse(u.(string))
		Expect(err).NotTo(HaveOccurred())
		uris = append(uris, parsed)
	}
	var dnsNames []string
	if names, ok := spec["dnsNames"].([]any); ok {
		for _, n := range names {
			dnsNames = append(dnsNames, n.(string))
		}
	}
	duration, err := time.ParseDuration(spec["duration"].(string))
	Expect(err).NotTo(HaveOccurred())

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	Expect(err).NotTo(HaveOccurred())
	now := time.Now().Truncate(time.Second)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial, NotBefore: now, NotAfter: now.Add(duration), URIs: uris, DNSNames: dnsNames,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}, s.cert, &key.PublicKey, s.key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	Expect(err).NotTo(HaveOccurred())

	issuerRef := spec["issuerRef"].(map[string]any)
	labels := map[string]string{}
	if tmpl, ok := spec["secretTemplate"].(map[string]any); ok {
		for k, v := range tmpl["labels"].(map[string]any) {
			labels[k] = v.(string)
		}
	}
	data := map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"ca.crt":  s.caPEM(),
	}
	annotations := map[string]string{
		"cert-manager.io/certificate-name": name,
		"cert-manager.io/issuer-name":      issuerRef["name"].(string),
		"cert-manager.io/issuer-kind":      issuerRef["kind"].(string),
		"cert-manager.io/issuer-group":     issuerRef["group"].(string),
		"cert-manager.io/uri-sans":         strings.Join(uriStrings(uris), ","),
	}
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: spec["secretName"].(string)}}
		err := k8s.Get(ctx, client.ObjectKeyFromObject(secret), secret)
		if client.IgnoreNotFound(err) != nil {
			return err
		}
		if secret.Labels == nil {
			secret.Labels = map[string]string{}
		}
		for k, v := range labels {
			secret.Labels[k] = v
		}
		secret.Annotations, secret.Type, secret.Data = annotations, corev1.SecretTypeTLS, data
		if apierrors.IsNotFound(err) {
			return k8s.Create(ctx, secret)
		}
		return k8s.Update(ctx, secret)
	})).To(Succeed())
	return serial.Text(16)
}

func uriStrings(uris []*url.URL) []string {
	out := make([]string, len(uris))
	for i, u := range uris {
		out[i] = u.String()
	}
	return out
}
